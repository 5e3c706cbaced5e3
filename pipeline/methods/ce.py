"""`ce`: no teacher. The student learns from the gold labels alone, L = CE(y, p_s): every teacher weight is
zero, so losses.student_loss keeps the cross-entropy at full weight (Table 2's lower bound for KD)."""

from __future__ import annotations

import torch

from . import Constant, Method

METHOD = Method(lambda ctx: Constant(torch.zeros(len(ctx.teachers))))
