"""The training loss: Dice + cross-entropy, marginal over classes a case does not label.

Usage::

    loss_function = MarginalDiceCELoss(unknown_class=3)           # the spinal canal
    loss = loss_function(logits, labels, canal_known)              # canal_known: bool tensor [B]

Real scans have vertebral-body masks but no spinal-canal label: their background holds the canal too. For such
samples the canal probability is merged into background (a marginal loss): predicting the canal there costs
nothing, predicting it inside a body or lesion costs as much as any other error. Samples whose canal is known
(the phantom, annotated folders) get the plain Dice + cross-entropy over all classes. Dice is pooled over the
batch per class (MONAI's ``DiceCELoss(batch=True)`` convention) and averaged over classes, cross-entropy
averaged over pixels, and the two added.
"""

from __future__ import annotations

import torch

SMOOTH = 1e-5  # MONAI's smooth_nr / smooth_dr


class MarginalDiceCELoss(torch.nn.Module):
    def __init__(self, unknown_class: int = 3, background: int = 0):
        super().__init__()
        self.unknown_class = unknown_class
        self.background = background

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """``logits`` [B, C, ...], ``labels`` [B, 1, ...] int, ``known`` [B] bool (is ``unknown_class`` labelled)."""
        classes = logits.shape[1]
        target = labels[:, 0].long()
        unknown = ~known.to(torch.bool).to(logits.device)
        log_probs = torch.log_softmax(logits.float(), dim=1)
        shape = [-1] + [1] * (logits.ndim - 1)
        merge = unknown.view(shape)
        background, other = self.background, self.unknown_class
        merged = torch.logsumexp(log_probs[:, [background, other]], dim=1, keepdim=True)
        log_probs = log_probs.clone()
        log_probs[:, background: background + 1] = torch.where(merge, merged, log_probs[:, background: background + 1])
        # Where the class is unknown its probability now lives in background; its own channel drops out.
        log_probs[:, other: other + 1] = torch.where(merge, torch.full_like(merged, -torch.inf),
                                                     log_probs[:, other: other + 1])
        cross_entropy = torch.nn.functional.nll_loss(log_probs.clamp_min(-100.0), target)

        probs = log_probs.exp()
        onehot = torch.nn.functional.one_hot(target, classes).movedim(-1, 1).to(probs.dtype)
        reduce = [0] + list(range(2, logits.ndim))
        intersection = (probs * onehot).sum(reduce)
        dice = 1.0 - (2.0 * intersection + SMOOTH) / (probs.sum(reduce) + onehot.sum(reduce) + SMOOTH)
        return dice.mean() + cross_entropy
