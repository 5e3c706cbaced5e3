"""`ce`: no teacher. The student learns from the gold labels alone, L = CE(y, p_s): every teacher weight is
zero, so losses.student_loss keeps the cross-entropy at full weight (Table 2's lower bound for KD)."""

from __future__ import annotations

import torch

from . import Method
from .weighting import Constant

METHOD = Method(lambda run: Constant(torch.zeros(len(run.teachers))), kind="fixed")
