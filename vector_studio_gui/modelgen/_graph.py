"""A small helper around ``onnx.helper`` used by every builder in this subpackage.

Nodes get unique output names, constants become initializers, and a few composite layers
(linear with PyTorch ``(out, in)`` weights, LayerNormalization, multi-head attention) are shared
by the BERT and CLIP builders. The numpy helpers at the bottom are the matching references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: IR version 8 + opset 17 loads in every onnxruntime >= 1.14 (the project needs >= 1.17).
IR_VERSION = 8
DEFAULT_OPSET = 17

FLOAT_MIN = float(np.finfo(np.float32).min)

_ONNX_DTYPES = {
    np.dtype(np.float32): 1,  # TensorProto.FLOAT
    np.dtype(np.int64): 7,  # TensorProto.INT64
    np.dtype(np.bool_): 9,  # TensorProto.BOOL
}


def onnx_dtype(dtype: Any) -> int:
    return _ONNX_DTYPES[np.dtype(dtype)]


class GraphBuilder:
    """Accumulates nodes and initializers; every helper returns the name of its output."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self._names: set[str] = set()
        self._counter = 0
        self._consts: dict[tuple, str] = {}

    # -- naming ---------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        hint = hint.replace("/", "_")
        name = hint
        while name in self._names:
            self._counter += 1
            name = f"{hint}_{self._counter}"
        self._names.add(name)
        return name

    # -- graph interface --------------------------------------------------------------------
    def input(self, name: str, dtype: Any, shape: Sequence[int | str | None]) -> str:
        from onnx import helper

        self._names.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
        return name

    def output(self, value: str, name: str, dtype: Any, shape: Sequence[int | str | None]) -> str:
        """Declare ``value`` as a graph output called ``name`` (adds an Identity if needed)."""
        from onnx import helper

        if value != name:
            self._names.add(name)
            self.nodes.append(helper.make_node("Identity", [value], [name], name=f"out_{name}"))
        self.outputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
        return name

    def weight(self, array: np.ndarray, hint: str) -> str:
        """Store ``array`` as an initializer (float arrays become float32)."""
        from onnx import numpy_helper

        arr = np.asarray(array)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32, copy=False)
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def const(self, value: Any, dtype: Any = np.float32) -> str:
        """A small constant initializer, de-duplicated by value."""
        arr = np.asarray(value, dtype=dtype)
        if arr.ndim == 0 and arr.dtype.kind in "iu":
            # see prefix_rows(): keep integer constants 1-D
            raise ValueError("use 1-D integer constants")
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.weight(arr, f"const_{arr.dtype.name}")
        return self._consts[key]

    def op(self, op_type: str, inputs: Sequence[str], *, n_out: int = 1, hint: str = "",
           **attrs: Any) -> Any:
        from onnx import helper

        outs = [self.fresh(f"{hint or op_type}_out{i}" if n_out > 1 else (hint or op_type))
                for i in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"n_{op_type}"), **attrs)
        )
        return outs[0] if n_out == 1 else outs

    # -- composite layers ---------------------------------------------------------------
    def linear(self, x: str, w: np.ndarray, b: np.ndarray | None, hint: str) -> str:
        """``x @ w.T + b`` with ``w`` in PyTorch ``nn.Linear`` layout ``(out, in)``."""
        wt = self.weight(np.asarray(w, dtype=np.float32).T, f"{hint}.weight_T")
        y = self.op("MatMul", [x, wt], hint=f"{hint}_matmul")
        if b is not None:
            y = self.op("Add", [y, self.weight(b, f"{hint}.bias")], hint=f"{hint}_add")
        return y

    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float,
                   hint: str) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.weight(gamma, f"{hint}.weight"), self.weight(beta, f"{hint}.bias")],
            axis=-1, epsilon=float(eps), hint=hint,
        )

    def gelu_erf(self, x: str) -> str:
        """Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2)))."""
        e = self.op("Erf", [self.op("Div", [x, self.const(math.sqrt(2.0))])])
        one_plus = self.op("Add", [e, self.const(1.0)])
        return self.op("Mul", [self.op("Mul", [x, one_plus]), self.const(0.5)], hint="gelu")

    def quick_gelu(self, x: str) -> str:
        """CLIP's quick_gelu: x * sigmoid(1.702 x)."""
        s = self.op("Sigmoid", [self.op("Mul", [x, self.const(1.702)])])
        return self.op("Mul", [x, s], hint="quick_gelu")

    def attention(self, x: str, q: tuple, k: tuple, v: tuple, o: tuple, *, heads: int,
                  width: int, additive_mask: str | None, hint: str,
                  scale_query: bool = False) -> str:
        """Multi-head self-attention on ``x`` [B, S, width].

        ``q``/``k``/``v``/``o`` are ``(weight, bias)`` pairs in PyTorch layout. The additive mask,
        if any, broadcasts against the scores [B, heads, S, S]. BERT divides the scores by
        sqrt(head_dim); CLIP scales the query first (``scale_query``); same maths.
        """
        dh = width // heads
        split = self.const([0, 0, heads, dh], np.int64)
        scale = self.const(1.0 / math.sqrt(dh))

        def heads_of(p: tuple, name: str, perm: list[int]) -> str:
            y = self.linear(x, p[0], p[1], f"{hint}.{name}")
            if name == "q" and scale_query:
                y = self.op("Mul", [y, scale])
            y = self.op("Reshape", [y, split])
            return self.op("Transpose", [y], perm=perm)

        qh = heads_of(q, "q", [0, 2, 1, 3])  # B, h, S, dh
        kh = heads_of(k, "k", [0, 2, 3, 1])  # B, h, dh, S
        vh = heads_of(v, "v", [0, 2, 1, 3])  # B, h, S, dh
        scores = self.op("MatMul", [qh, kh])
        if not scale_query:
            scores = self.op("Mul", [scores, scale])
        if additive_mask is not None:
            scores = self.op("Add", [scores, additive_mask])
        probs = self.op("Softmax", [scores], axis=-1)
        ctx = self.op("MatMul", [probs, vh])
        ctx = self.op("Transpose", [ctx], perm=[0, 2, 1, 3])
        ctx = self.op("Reshape", [ctx, self.const([0, 0, width], np.int64)])
        return self.linear(ctx, o[0], o[1], f"{hint}.o")

    def dim(self, tensor: str, axis: int) -> str:
        """A 1-element int64 tensor holding ``tensor.shape[axis]``."""
        shape = self.op("Shape", [tensor])
        return self.op("Gather", [shape, self.const([axis], np.int64)], axis=0)

    def prefix_rows(self, table: str, like: str, axes: Sequence[int] = (0,)) -> str:
        """``table[:S]`` (or ``table[:S, :S]`` with ``axes=(0, 1)``), S = ``like.shape[1]``.

        Deliberately built without scalar int64 constants: onnxruntime's ConstantSharing pass
        (1.32) merges a scalar and a 1-element 1-D initializer of the same value, which then
        breaks a later Gather-to-Slice rewrite ("Starts must be a 1-D array").
        """
        seq = self.dim(like, 1)
        n = len(axes)
        ends = seq if n == 1 else self.op("Concat", [seq] * n, axis=0)
        return self.op("Slice", [table, self.const([0] * n, np.int64), ends,
                                 self.const(list(axes), np.int64)])

    # -- output -----------------------------------------------------------------------------
    def model(self, name: str, *, opset: int = DEFAULT_OPSET) -> Any:
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs,
                                  initializer=self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", opset)],
            producer_name="vector_studio_gui.modelgen",
        )
        model.ir_version = IR_VERSION
        return model

    def save(self, path: str | Path, name: str, *, opset: int = DEFAULT_OPSET) -> Path:
        import onnx

        model = self.model(name, opset=opset)
        onnx.checker.check_model(model)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Models here stay well under protobuf's 2 GB limit: one self-contained file.
        path.write_bytes(model.SerializeToString())
        return path


# --------------------------------------------------------------------------------------------
# numpy references (float64 inside for a tight comparison with ONNX Runtime's float32)
# --------------------------------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def np_linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    y = x @ np.asarray(w, dtype=np.float64).T
    return y if b is None else y + b


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def np_quick_gelu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-1.702 * x))


def np_attention(x: np.ndarray, q: tuple, k: tuple, v: tuple, o: tuple, *, heads: int,
                 additive_mask: np.ndarray | None) -> np.ndarray:
    b, s, width = x.shape
    dh = width // heads

    def split(p: tuple) -> np.ndarray:
        return np_linear(x, *p).reshape(b, s, heads, dh).transpose(0, 2, 1, 3)

    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(dh)
    if additive_mask is not None:
        scores = scores + additive_mask
    ctx = np_softmax(scores) @ split(v)
    return np_linear(ctx.transpose(0, 2, 1, 3).reshape(b, s, width), *o)


def as_f64(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
