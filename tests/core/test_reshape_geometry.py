"""Reshape index geometry and ChannelMap arithmetic, property-tested against numpy: the oracle reshapes an
array holding each entry's channel id and reads where the channels landed."""
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

settings.register_profile("ppprune", database=None)  # nothing written into the tree
settings.load_profile("ppprune")

from ppprune.core import reshape_geometry as geo
from ppprune.core.channel_map import ChannelMap

small_dims = st.lists(st.integers(1, 5), min_size=1, max_size=4)


def channel_ids(in_shape, axis, out_shape):
    """The input channel (index along `axis`) each entry of the reshaped tensor came from."""
    ids = np.arange(in_shape[axis]).reshape([-1 if a == axis else 1 for a in range(len(in_shape))])
    return np.broadcast_to(ids, in_shape).reshape(out_shape)


def carries(in_shape, out_shape, axis):
    """Oracle of `regroup`: the out axis b and k with entry j of b holding channel j // k everywhere."""
    got, size = channel_ids(in_shape, axis, out_shape), in_shape[axis]
    for b, d in enumerate(out_shape):
        if d % size == 0:
            j = np.arange(d).reshape([-1 if a == b else 1 for a in range(len(out_shape))])
            if np.array_equal(got, np.broadcast_to(j // (d // size), out_shape)):
                return b, d // size
    return None


def splits(in_shape, out_shape, axis):
    """Oracle of `split_axis`: adjacent out axes b, b+1 (sizes g, m > 1) holding channel i * m + j."""
    got = channel_ids(in_shape, axis, out_shape)
    for b in range(len(out_shape) - 1):
        g, m = out_shape[b], out_shape[b + 1]
        if g > 1 and m > 1 and g * m == in_shape[axis]:
            i = np.arange(g).reshape([-1 if a == b else 1 for a in range(len(out_shape))])
            j = np.arange(m).reshape([-1 if a == b + 1 else 1 for a in range(len(out_shape))])
            if np.array_equal(got, np.broadcast_to(i * m + j, out_shape)):
                return b, g, m
    return None


@st.composite
def reshapes(draw):
    """(in_shape, out_shape, axis): the same entries regrouped, by a random factorization of the dims."""
    in_shape = draw(small_dims)
    factors = [p for d in in_shape for p in _primes(d)]
    factors = draw(st.permutations(factors)) if factors else []
    cuts = sorted(draw(st.lists(st.integers(0, len(factors)), max_size=3)))
    bounds = [0] + cuts + [len(factors)]
    out_shape = [int(np.prod(factors[lo:hi])) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if draw(st.booleans()):  # the regroupings models use keep the factor order: flatten, fold, split
        out_shape = _ordered(draw, in_shape)
    # A one-entry axis is the same entry wherever it lands: only wider channel axes have a place.
    axis = draw(st.sampled_from([a for a, d in enumerate(in_shape) if d > 1] or [None]))
    return in_shape, out_shape, axis


def _ordered(draw, in_shape):
    factors = [p for d in in_shape for p in _primes(d)] or [1]
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(factors) - 1, 1)), max_size=3))))
    bounds = [0] + [c for c in cuts if c < len(factors)] + [len(factors)]
    out = [int(np.prod(factors[lo:hi])) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return out + [1] * draw(st.integers(0, 1))  # a trailing unit dim, as unsqueeze adds


def _primes(n):
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@settings(max_examples=400)
@given(reshapes())
def test_regroup_finds_exactly_where_the_channels_land(case):
    in_shape, out_shape, axis = case
    assume(axis is not None)
    assert geo.regroup(in_shape, out_shape, axis) == carries(in_shape, out_shape, axis)


@settings(max_examples=400)
@given(reshapes())
def test_split_axis_finds_exactly_a_split_of_the_channels(case):
    in_shape, out_shape, axis = case
    assume(axis is not None)
    assert geo.split_axis(in_shape, out_shape, axis) == splits(in_shape, out_shape, axis)


@given(small_dims, st.integers(2, 4), st.integers(2, 4), small_dims)
def test_a_channel_shuffle_split_is_found(pre, g, m, post):
    in_shape, out_shape, axis = pre + [g * m] + post, pre + [g, m] + post, len(pre)
    assert geo.split_axis(in_shape, out_shape, axis) == splits(in_shape, out_shape, axis) == (axis, g, m)
    assert geo.split_source(in_shape, out_shape, axis + 1) == (axis, (axis, g, m))
    assert geo.regroup(in_shape, out_shape, axis) is None  # a split is no block expansion


@settings(max_examples=300)
@given(reshapes())
def test_split_source_and_merged_into_read_the_reshape_backwards(case):
    in_shape, out_shape, _ = case
    for out_axis in range(len(out_shape)):
        want_split = next(((a, s) for a in range(len(in_shape))
                           if (s := splits(in_shape, out_shape, a)) is not None and s[0] + 1 == out_axis), None)
        assert geo.split_source(in_shape, out_shape, out_axis) == want_split
        want_merge = next(((a, w[1]) for a in range(len(in_shape)) if in_shape[a] > 1
                           and (w := carries(in_shape, out_shape, a)) is not None and w[0] == out_axis and w[1] > 1), None)
        assert geo.merged_into(in_shape, out_shape, out_axis) == want_merge


@settings(max_examples=200)
@given(st.integers(2, 6), st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(2, 8), st.data())
def test_an_unknown_batch_dim_only_matches_a_batch_dim(batch, rest, channels, data):
    """The batch dim is -1 in both shapes: answers are those of any concrete batch size."""
    in_shape = [batch, channels] + rest
    out_shape = _ordered(data.draw, in_shape[1:])
    out_shape = [batch] + out_shape
    unknown_in, unknown_out = [-1] + in_shape[1:], [-1] + out_shape[1:]
    for axis in (a for a in range(1, len(in_shape)) if in_shape[a] > 1):
        assert geo.regroup(unknown_in, unknown_out, axis) == carries(in_shape, out_shape, axis)
        assert geo.split_axis(unknown_in, unknown_out, axis) == splits(in_shape, out_shape, axis)


def test_a_channel_folded_with_the_batch_is_never_followed():
    # [-1, 8] -> [-1, 4, 2] splits the channels; [-1, 8] -> [-1 * 2, 4] would fold them into the batch
    assert geo.split_axis([-1, 8], [-1, 4, 2], 1) == (1, 4, 2)
    assert geo.regroup([-1, 8], [-1, 4], 1) is None
    assert geo.regroup([-1, 8, 4, 4], [-1, 128], 1) == (1, 16)


# -- ChannelMap ------------------------------------------------------------------------------------

pairs = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 12)), max_size=40)


def cmap(ps):
    ps = sorted(set(ps))
    return ChannelMap([p[0] for p in ps], [p[1] for p in ps])


def as_set(ch):
    return set(zip(ch.local.tolist(), ch.master.tolist()))


@given(pairs, pairs)
def test_union_and_minus_are_set_operations_on_pairs(a, b):
    x, y = cmap(a), cmap(b)
    assert as_set(x.union(y)) == as_set(x) | as_set(y) and len(x.union(y)) == len(as_set(x) | as_set(y))
    assert as_set(x.minus(y)) == as_set(x) - as_set(y)


@given(pairs, st.integers(1, 5), st.integers(0, 20))
def test_expand_shift_window_and_blocks_are_index_arithmetic(a, k, offset):
    x = cmap(a)
    assert as_set(x.expand(k)) == {(lo * k + i, m) for lo, m in as_set(x) for i in range(k)}
    assert as_set(x.shift(offset)) == {(lo + offset, m) for lo, m in as_set(x)}
    assert as_set(x.shift(offset).window(offset, offset + 10)) == {(lo, m) for lo, m in as_set(x) if lo < 10}
    blocks = x.blocks(k)  # one entry per block, named by the master of its lowest local index
    first = {}
    for lo, m in sorted(as_set(x)):
        first.setdefault(lo // k, m)
    assert as_set(blocks) == set(first.items()) or k == 1 and as_set(blocks) == as_set(x)


@given(pairs, st.integers(1, 6), st.integers(1, 4))
def test_modulo_and_tile_place_a_position_in_every_group(a, m, g):
    x = cmap(a)
    assert as_set(x.modulo(m)) == {(lo % m, mm) for lo, mm in as_set(x)}
    inner = cmap([(lo % m, mm) for lo, mm in as_set(x)])
    assert as_set(inner.tile(m, g)) == {(lo + i * m, mm) for lo, mm in as_set(inner) for i in range(g)}


@given(pairs, st.lists(st.booleans(), min_size=13, max_size=13))
def test_select_gives_the_local_indices_of_the_chosen_masters(a, mask):
    x, mask = cmap(a), np.array(mask)
    assert x.select(mask).tolist() == sorted({lo for lo, m in as_set(x) if mask[m]})
