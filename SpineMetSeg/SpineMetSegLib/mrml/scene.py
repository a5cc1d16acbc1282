"""Slicer nodes <-> SimpleITK images, with their geometry.

Slicer stores a volume as voxels plus an IJK-to-RAS matrix; SimpleITK (and NIfTI, NRRD, ITK) use origin,
spacing and direction in LPS. RAS and LPS differ by the sign of the first two axes, so every conversion here
flips x and y; forgetting it mirrors the image left-right and front-back, which no test on an identity
matrix would notice.

Usage::

    from SpineMetSegLib.mrml import scene

    image = scene.image_from_volume_node(t1_node)                 # sitk.Image in LPS, same voxels
    node = scene.add_volume_node(context.scene, image, "T1 copy")
    mask = scene.segment_mask(segmentation_node, "metastasis")   # uint8 0/1 on the segmentation's grid
    scene.set_segment_mask(segmentation_node, "metastasis", mask)

Segment masks are taken on the segmentation's reference geometry (the grid of the volume it was made on),
so two calls on the same segmentation always give images on the same grid.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtkmodules.util import numpy_support

from ..errors import GeometryError, ImageError
from ..images.imageio import Geometry

# RAS <-> LPS: negate x and y.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def ijk_to_ras_of_image(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix of a SimpleITK image (whose geometry is in LPS)."""
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = RAS_TO_LPS @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = RAS_TO_LPS @ np.array(image.GetOrigin(), dtype=float)
    return matrix


def set_geometry_from_ijk_to_ras(image: sitk.Image, ijk_to_ras: np.ndarray) -> sitk.Image:
    """Give ``image`` the origin, spacing and direction (LPS) that the IJK-to-RAS matrix describes."""
    axes = RAS_TO_LPS @ np.asarray(ijk_to_ras, dtype=float)[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise GeometryError("The volume has a zero voxel spacing; it cannot be used. Check the volume's geometry.")
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in (axes / spacing).ravel()))
    image.SetOrigin(tuple(float(o) for o in RAS_TO_LPS @ np.asarray(ijk_to_ras, dtype=float)[:3, 3]))
    return image


def array_from_image_data(image_data) -> np.ndarray:
    """Voxels of a vtkImageData as a (k, j, i) array (SimpleITK's order), a copy."""
    dims = image_data.GetDimensions()
    scalars = image_data.GetPointData().GetScalars()
    if scalars is None:
        raise ImageError("The volume has no voxels. Load or create the image first.")
    if scalars.GetNumberOfComponents() != 1:
        raise ImageError(
            f"The volume has {scalars.GetNumberOfComponents()} components per voxel (a colour or vector image); "
            "choose a single-component (scalar) MRI volume."
        )
    return numpy_support.vtk_to_numpy(scalars).reshape(dims[::-1]).copy()


def image_data_from_array(array: np.ndarray):
    """A vtkImageData holding a (k, j, i) array, origin 0 and spacing 1 (geometry lives in the matrix)."""
    array = np.ascontiguousarray(array)
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    image_data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    return image_data


def vtk_matrix(matrix: np.ndarray):
    result = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            result.SetElement(row, column, float(matrix[row, column]))
    return result


def numpy_matrix(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])


def local_ijk_to_ras(volume_node) -> np.ndarray:
    """The volume's own IJK-to-RAS matrix (without parent transforms) as a 4x4 array."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return numpy_matrix(matrix)


def world_ijk_to_ras(volume_node) -> np.ndarray:
    """The volume's IJK-to-RAS in world coordinates: its own matrix, moved by a linear parent transform."""
    ijk_to_ras = local_ijk_to_ras(volume_node)
    transform_node = volume_node.GetParentTransformNode()
    if transform_node is None:
        return ijk_to_ras
    if not transform_node.IsTransformToWorldLinear():
        raise GeometryError(
            f"The volume '{volume_node.GetName()}' is under a non-linear transform. Harden the transform "
            "(Data module: right-click the volume, 'Harden transform') and try again."
        )
    to_world = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(to_world)
    return numpy_matrix(to_world) @ ijk_to_ras


def image_from_volume_node(volume_node) -> sitk.Image:
    """The volume's voxels and world geometry as a SimpleITK image (LPS), same pixel type."""
    if volume_node is None or volume_node.GetImageData() is None:
        name = volume_node.GetName() if volume_node is not None else "(none)"
        raise ImageError(f"The volume '{name}' has no voxels. Load or choose another volume.")
    image = sitk.GetImageFromArray(array_from_image_data(volume_node.GetImageData()))
    return set_geometry_from_ijk_to_ras(image, world_ijk_to_ras(volume_node))


def geometry_of_volume_node(volume_node) -> Geometry:
    """The world grid of a volume node (size, spacing, origin, direction in LPS) without copying voxels."""
    if volume_node is None or volume_node.GetImageData() is None:
        name = volume_node.GetName() if volume_node is not None else "(none)"
        raise ImageError(f"The volume '{name}' has no voxels. Load or choose another volume.")
    image = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    set_geometry_from_ijk_to_ras(image, world_ijk_to_ras(volume_node))
    return Geometry(tuple(volume_node.GetImageData().GetDimensions()), image.GetSpacing(), image.GetOrigin(),
                    image.GetDirection())


def update_volume_node_from_image(volume_node, image: sitk.Image) -> None:
    """Replace the volume's voxels and geometry with those of ``image``."""
    volume_node.SetAndObserveImageData(image_data_from_array(sitk.GetArrayFromImage(image)))
    volume_node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras_of_image(image)))


def add_volume_node(scene, image: sitk.Image, name: str, class_name: str = "vtkMRMLScalarVolumeNode"):
    """Add a volume node holding ``image`` (with default display) to the scene and return it."""
    node = scene.AddNewNodeByClass(class_name, name)
    update_volume_node_from_image(node, image)
    node.CreateDefaultDisplayNodes()
    return node


def oriented_image_from_image(image: sitk.Image, ijk_to_ras: Optional[np.ndarray] = None):
    """A vtkOrientedImageData (Slicer's segment storage) of ``image``; ``ijk_to_ras`` overrides its geometry."""
    oriented = slicer.vtkOrientedImageData()
    oriented.ShallowCopy(image_data_from_array(sitk.GetArrayFromImage(image)))
    oriented.SetImageToWorldMatrix(vtk_matrix(ijk_to_ras if ijk_to_ras is not None else ijk_to_ras_of_image(image)))
    return oriented


def image_from_oriented_image(oriented) -> sitk.Image:
    """A SimpleITK image of a vtkOrientedImageData (whose extent may not start at 0)."""
    matrix = vtk.vtkMatrix4x4()
    oriented.GetImageToWorldMatrix(matrix)
    ijk_to_ras = numpy_matrix(matrix)
    # The first voxel of an extent [i0, ...] sits at index (i0, j0, k0) of the oriented image's grid.
    start = np.array(oriented.GetExtent()[0::2], dtype=float)
    ijk_to_ras[:3, 3] = ijk_to_ras[:3, :3] @ start + ijk_to_ras[:3, 3]
    image = sitk.GetImageFromArray(array_from_image_data(oriented))
    return set_geometry_from_ijk_to_ras(image, ijk_to_ras)


def segmentation_geometry(segmentation_node):
    """An empty vtkOrientedImageData with the segmentation's reference grid (the volume it was made on)."""
    segmentation = segmentation_node.GetSegmentation()
    serialized = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    geometry = slicer.vtkOrientedImageData()
    if serialized:
        slicer.vtkSegmentationConverter.DeserializeImageGeometry(serialized, geometry, False)
        return geometry
    # No reference volume recorded (e.g. a segmentation built by a script): the grid of its label maps.
    for index in range(segmentation.GetNumberOfSegments()):
        segmentation_node.GetBinaryLabelmapRepresentation(segmentation.GetNthSegmentID(index), geometry)
        if geometry.GetPointData().GetScalars() is not None:
            return geometry
    raise GeometryError(
        f"The segmentation '{segmentation_node.GetName()}' has no reference geometry and no voxels. "
        "Create it on a volume (Segment Editor: choose the source volume) and try again."
    )


def segment_mask(segmentation_node, segment_id: str, geometry=None) -> sitk.Image:
    """A uint8 0/1 image of one segment, on ``geometry`` (default: the segmentation's reference grid)."""
    if segmentation_node.GetSegmentation().GetSegment(segment_id) is None:
        raise ImageError(
            f"The segmentation '{segmentation_node.GetName()}' has no segment '{segment_id}'. Choose another segment."
        )
    if geometry is None:
        geometry = segmentation_geometry(segmentation_node)
    segment_ids = vtk.vtkStringArray()
    segment_ids.InsertNextValue(segment_id)
    merged = slicer.vtkOrientedImageData()
    ok = segmentation_node.GenerateMergedLabelmapForAllSegments(
        merged, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, geometry, segment_ids
    )
    if not ok:
        raise GeometryError(
            f"Slicer could not turn the segment '{segment_id}' of '{segmentation_node.GetName()}' into voxels."
        )
    image = image_from_oriented_image(merged)
    return sitk.Cast(image > 0, sitk.sitkUInt8)


def set_segment_mask(segmentation_node, segment_id: str, mask: sitk.Image) -> None:
    """Replace one segment's voxels with the non-zero voxels of ``mask`` (any grid)."""
    binary = sitk.Cast(mask > 0, sitk.sitkUInt8)
    oriented = oriented_image_from_image(binary)
    slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        oriented, segmentation_node, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )
