"""Convert the paraphrase-MiniLM-L3-v2 ONNX export into a transformers BertModel state dict.

Named initializers (`model.0.auto_model.*`) map to BertModel keys directly. The export left each
linear layer's weight anonymous (`onnx::MatMul_*`), so we name it after the bias that its MatMul's
output is added to, and transpose it (ONNX stores x @ W, torch stores W x).
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper

PREFIX = "model.0.auto_model."


def bert_state_dict(onnx_path) -> dict[str, torch.Tensor]:
    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    state = {k[len(PREFIX) :]: v for k, v in inits.items() if k.startswith(PREFIX)}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits or node.input[1].startswith(PREFIX):
            continue
        bias = _added_bias(consumers.get(node.output[0], []), inits)
        if bias is None:
            raise ValueError(f"{onnx_path}: MatMul {node.name} has no named bias to follow")
        state[bias[len(PREFIX) : -len(".bias")] + ".weight"] = np.ascontiguousarray(inits[node.input[1]].T)
    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}


def _added_bias(nodes, inits):
    for node in nodes:
        if node.op_type == "Add":
            for name in node.input:
                if name in inits and name.startswith(PREFIX) and name.endswith(".bias"):
                    return name
    return None
