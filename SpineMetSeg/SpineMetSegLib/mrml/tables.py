"""Fill a vtkMRMLTableNode from rows of Python values, read it back, and export it as CSV.

Usage::

    from SpineMetSegLib.mrml import tables

    columns = [tables.Column("Lesion", int), tables.Column("Volume", float, unit="mL")]
    tables.fill_table(table_node, columns, [[1, 0.52], [2, 1.75]])
    tables.rows_of(table_node)                     # [{"Lesion": 1, "Volume": 0.52}, ...]
    tables.write_csv(table_node, "lesions.csv")    # atomic: no partial file on failure

A missing number (``None``) is stored as NaN in a numeric column and shown empty; the CSV writes it empty too.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import vtk

from ..images.atomicfile import atomic_path

# Digits a CSV keeps: enough for millimetres and millilitres, no float noise.
CSV_SIGNIFICANT_DIGITS = 6


@dataclass(frozen=True)
class Column:
    name: str
    kind: type = str  # str, int, float or bool
    unit: str = ""
    description: str = ""


def _vtk_array(kind: type):
    if kind is float:
        return vtk.vtkDoubleArray()
    if kind in (int, bool):
        return vtk.vtkIntArray()
    return vtk.vtkStringArray()


def fill_table(table_node, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
    """Replace the table's content with ``rows`` (one value per column, in order); the table stays read-only."""
    arrays = []
    for column in columns:
        array = _vtk_array(column.kind)
        array.SetName(column.name)
        array.SetNumberOfValues(len(rows))
        arrays.append(array)
    for row_index, row in enumerate(rows):
        for array, column, value in zip(arrays, columns, row):
            array.SetValue(row_index, _stored(column.kind, value))
    was_modifying = table_node.StartModify()
    try:
        table_node.SetLocked(False)
        table_node.RemoveAllColumns()
        for array, column in zip(arrays, columns):
            table_node.AddColumn(array)
            if column.unit:
                table_node.SetColumnUnitLabel(column.name, column.unit)
            if column.description:
                table_node.SetColumnDescription(column.name, column.description)
        table_node.SetUseColumnNameAsColumnHeader(True)
        table_node.SetLocked(True)  # numbers computed from the segmentation: edit the segmentation, not them
    finally:
        table_node.EndModify(was_modifying)


def _stored(kind: type, value: Any) -> Any:
    if kind is float:
        return float("nan") if value is None else float(value)
    if kind in (int, bool):
        return 0 if value is None else int(value)
    return "" if value is None else str(value)


def rows_of(table_node) -> List[Dict[str, Any]]:
    """The table as a list of {column name: value}; NaN comes back as None."""
    table = table_node.GetTable()
    names = [table.GetColumnName(index) for index in range(table.GetNumberOfColumns())]
    rows = []
    for row_index in range(table.GetNumberOfRows()):
        row = {}
        for column_index, name in enumerate(names):
            array = table.GetColumn(column_index)
            value = array.GetValue(row_index)
            if isinstance(array, vtk.vtkDoubleArray) and math.isnan(value):
                value = None
            row[name] = value
        rows.append(row)
    return rows


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{CSV_SIGNIFICANT_DIGITS}g}"
    return str(value)


def write_csv(table_node, path: Union[str, os.PathLike]) -> Path:
    """Write the table as CSV (header with units, e.g. ``Volume [mL]``) atomically; return the path."""
    path = Path(path)
    table = table_node.GetTable()
    names = [table.GetColumnName(index) for index in range(table.GetNumberOfColumns())]
    header = []
    for name in names:
        unit = table_node.GetColumnUnitLabel(name)
        header.append(f"{name} [{unit}]" if unit else name)
    with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for row in rows_of(table_node):
            writer.writerow([_csv_text(row[name]) for name in names])
    return path
