"""The back-projection's writes of the volume: a tile's buffered voxel columns as whole cache lines of its rows.

The kernels (`bp_kernels`, `bp_full`, `local_blocks`, `local_rows`) sum a tile of voxel columns, each column
the block's rows, in a buffer; the volume is ``(z, y, x)``, so a column is one value in each of many rows.
Written value by value, each touches a cache line (and often a page); here the buffer goes out 16 rows by
16 columns at a time, transposed in registers, by non-temporal stores that neither read the lines first nor
evict the filtered rows from the caches.
"""

from __future__ import annotations

import platform

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .fft_lanes import stack_block

X86 = platform.machine().lower() in {"x86_64", "amd64", "i386", "i686", "x86"}  # `store_fence` emits ``sfence``


@intrinsic
def stream_line(typingctx, row, x0, line):  # pragma: no cover - compiled
    """``row[x0 : x0 + 16] = line[:16]`` by a non-temporal store: the volume's lines go to memory without
    being read first and without evicting the filtered rows from the caches. ``row[x0]`` must start a cache line."""
    def codegen(context, builder, signature, args):
        dst = context.make_array(signature.args[0])(context, builder, args[0])
        src = context.make_array(signature.args[2])(context, builder, args[2])
        vec = ir.VectorType(ir.FloatType(), 16)
        value = builder.load(builder.bitcast(src.data, vec.as_pointer()), align=4)
        store = builder.store(value, builder.bitcast(builder.gep(dst.data, [args[1]]), vec.as_pointer()), align=64)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return types.void(row, x0, line), codegen


@intrinsic
def store_fence(typingctx):  # pragma: no cover - compiled
    """``sfence``: the non-temporal stores are visible before any later store (and the kernel's return).
    Elsewhere than x86 (where ``sfence`` does not exist) a sequentially consistent fence."""
    def codegen(context, builder, signature, args):
        if X86:
            fnty = ir.FunctionType(ir.VoidType(), [])
            builder.call(cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence"), [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


def _transpose16(builder, rows):
    """The 16 x 16 float32 matrix whose rows are the vectors ``rows``, transposed in registers: at each of four
    steps ``d = 8, 4, 2, 1`` the off-diagonal ``d x d`` blocks of each ``2d x 2d`` block swap (bit ``d`` of the row
    and of the column change places), one two-vector shuffle per row and step."""
    rows = list(rows)
    for d in (8, 4, 2, 1):
        low = [e if e & d == 0 else 16 + e - d for e in range(16)]
        high = [e + d if e & d == 0 else 16 + e for e in range(16)]
        for r in range(16):
            if r & d == 0:
                a, c = rows[r], rows[r + d]
                rows[r] = builder.shuffle_vector(a, c, ir.Constant(ir.VectorType(ir.IntType(32), 16), low))
                rows[r + d] = builder.shuffle_vector(a, c, ir.Constant(ir.VectorType(ir.IntType(32), 16), high))
    return rows


@intrinsic
def stream_transposed(typingctx, tile, k0, rows, r0, x0):  # pragma: no cover - compiled
    """``rows[r0 + i, x0 : x0 + 16] = tile[0:16, k0 + i]`` for ``i < 16``: 16 vectors of ``tile`` (2-D float32, rows
    of columns) transposed in registers and written by non-temporal stores. ``rows`` is 2-D float32 whose
    ``rows[r0 + i, x0]`` start cache lines. Done value by value through a line on the stack, the transpose cost
    two scalar loads and stores per value: as much as the sums of a few views."""
    if not (isinstance(tile, types.Array) and isinstance(rows, types.Array) and tile.ndim == 2 and rows.ndim == 2
            and tile.dtype == types.float32 and rows.dtype == types.float32):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        dst = context.make_array(signature.args[2])(context, builder, args[2])
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), 16)
        src_row = cgutils.unpack_tuple(builder, src.strides, 2)[0]
        dst_row = cgutils.unpack_tuple(builder, dst.strides, 2)[0]
        src_bytes = builder.bitcast(src.data, ir.IntType(8).as_pointer())
        dst_bytes = builder.bitcast(dst.data, ir.IntType(8).as_pointer())
        k0_, r0_, x0_ = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (1, 3, 4))
        first = builder.mul(k0_, ir.Constant(i64, 4))
        loaded = []
        for j in range(16):
            at = builder.add(first, builder.mul(src_row, ir.Constant(i64, j)))
            loaded.append(builder.load(builder.bitcast(builder.gep(src_bytes, [at]), vec.as_pointer()), align=4))
        column = builder.mul(x0_, ir.Constant(i64, 4))
        line = r0_
        hint = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        for i, value in enumerate(_transpose16(builder, loaded)):
            at = builder.add(column, builder.mul(dst_row, builder.add(line, ir.Constant(i64, i))))
            store = builder.store(value, builder.bitcast(builder.gep(dst_bytes, [at]), vec.as_pointer()), align=64)
            store.set_metadata("nontemporal", hint)
        return context.get_dummy_value()

    return types.void(tile, k0, rows, r0, x0), codegen


@numba.njit(inline="always", nogil=True)
def write_columns(buf, vol, z0, z1, x0, x1, row0, n_valid):  # pragma: no cover - compiled
    """``vol[z, row0 + k, x0:x1] = buf[z - z0, :, k]``: the buffered columns, a cache line of each row at a time
    (a non-temporal store where the 16 values fill one: writing the volume through the caches evicted the
    filtered rows and cost more than the writes themselves); 16 rows at a time transposed in registers
    (`stream_transposed`) where the rows' lines all start cache lines."""
    line = numba.carray(stack_block(16), (16,))  # type: ignore[call-arg]
    whole = x1 - x0 == 16 and buf.shape[2] >= 16 and vol.strides[1] % 64 == 0
    for z in range(z0, z1):
        tile = buf[z - z0]
        k_fast = 0
        if whole and (vol[z, row0].ctypes.data + 4 * x0) % 64 == 0:
            k_fast = n_valid - n_valid % 16
            for k in range(0, k_fast, 16):
                stream_transposed(tile, k, vol[z], row0 + k, x0)
        for k in range(k_fast, n_valid):
            row = vol[z, row0 + k]
            if x1 - x0 == 16 and (row.ctypes.data + 4 * x0) % 64 == 0:
                for j in range(16):
                    line[j] = tile[j, k]
                stream_line(row, x0, line)
            else:
                for j in range(x1 - x0):
                    row[x0 + j] = tile[j, k]
    store_fence()
