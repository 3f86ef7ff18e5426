"""layers.factorized_top_k: BruteForce and Streaming against hand-derived values and TFRS 0.7.7."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from torchrs.layers.factorized_top_k import BruteForce, Streaming, TopK

# Matmuls and reductions compared with TF / references within stated tolerances: `make test-numerics`
# reruns this file on other CPU code paths.
pytestmark = pytest.mark.numerics

# Tiny corpus used by the hand-derived tests. Candidates c0..c4 and query q = (2, 1):
#   c0 = (1, 0) -> 2,  c1 = (0, 1) -> 1,  c2 = (1, 0) -> 2 (duplicate of c0),  c3 = (1, 1) -> 3,  c4 = (0, 2) -> 2
# Descending, ties by lower index: c3 (3), c0 (2), c2 (2), c4 (2), c1 (1).
CANDIDATES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
QUERY = torch.tensor([[2.0, 1.0]])
ORDER = [3, 0, 2, 4, 1]
ORDER_SCORES = [3.0, 2.0, 2.0, 2.0, 1.0]
STR_IDS = ["a", "b", "c", "d", "e"]


def _batches(batch_size: int, ids: list | None = None) -> list:
    out = []
    for start in range(0, len(CANDIDATES), batch_size):
        emb = CANDIDATES[start : start + batch_size]
        out.append(emb if ids is None else (ids[start : start + batch_size], emb))
    return out


# ----------------------------------------------------------------------------- hand-derived


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_brute_force_hand_derived(k: int) -> None:
    scores, ids = BruteForce(k=k).index(CANDIDATES)(QUERY)
    assert scores.tolist() == [ORDER_SCORES[:k]]
    assert ids.dtype == torch.int64 and ids.tolist() == [ORDER[:k]]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_streaming_hand_derived(batch_size: int, k: int) -> None:
    # Every batch size, including an incomplete last batch (2 -> [2, 2, 1]; 3 -> [3, 2]).
    scores, ids = Streaming(k=k).index_from_dataset(_batches(batch_size))(QUERY)
    assert scores.tolist() == [ORDER_SCORES[:k]]
    assert ids.dtype == torch.int64 and ids.tolist() == [ORDER[:k]]


def test_identifier_kinds() -> None:
    # int ids come back as int64 tensors; str / bytes lists as object arrays of the same kind; NumPy
    # string arrays keep their dtype.
    int_ids = torch.tensor([10, 11, 12, 13, 14], dtype=torch.int32)
    _, ids = BruteForce(k=3).index(CANDIDATES, int_ids)(QUERY)
    assert ids.dtype == torch.int64 and ids.tolist() == [[13, 10, 12]]
    _, ids = BruteForce(k=3).index(CANDIDATES, np.arange(5) * 2)(QUERY)
    assert isinstance(ids, torch.Tensor) and ids.tolist() == [[6, 0, 4]]
    _, ids = BruteForce(k=3).index(CANDIDATES, STR_IDS)(QUERY)
    assert ids.dtype == object and ids.tolist() == [["d", "a", "c"]]
    _, ids = BruteForce(k=3).index(CANDIDATES, [s.encode() for s in STR_IDS])(QUERY)
    assert ids.dtype == object and ids.tolist() == [[b"d", b"a", b"c"]]
    _, ids = BruteForce(k=2).index(CANDIDATES, np.array(STR_IDS))(QUERY)
    assert ids.dtype == np.dtype("<U1") and ids.tolist() == [["d", "a"]]
    _, ids = Streaming(k=2).index_from_dataset(_batches(2, [s.encode() for s in STR_IDS]))(QUERY)
    assert ids.dtype == object and ids.tolist() == [[b"d", b"a"]]


def test_tokens_with_nul_bytes_round_trip() -> None:
    # A NumPy "S" array would strip trailing NULs; lists are kept as objects, so tokens come back exactly.
    tokens = [b"a\x00", b"b", b"c", b"\x00", b"e\n"]
    _, ids = BruteForce(k=5).index(CANDIDATES, tokens)(QUERY)
    assert ids.tolist() == [[b"\x00", b"a\x00", b"c", b"e\n", b"b"]]


def test_k_override_and_default() -> None:
    index = BruteForce(k=2).index(CANDIDATES)
    assert index(QUERY)[1].tolist() == [ORDER[:2]]
    assert index(QUERY, k=4)[1].tolist() == [ORDER[:4]]
    assert index(queries=QUERY, k=1)[1].tolist() == [ORDER[:1]]


def test_query_with_exclusions_hand_derived() -> None:
    # Exclude d (c3, best) and b: retrieve k + 2 = 4 -> d, a, c, e; d loses 1e5 -> a, c, e; keep 2: a, c.
    index = BruteForce(k=2).index(CANDIDATES, STR_IDS)
    scores, ids = index.query_with_exclusions(QUERY, [["d", "b"]])
    assert ids.tolist() == [["a", "c"]] and scores.tolist() == [[2.0, 2.0]]
    # bytes exclusions match str identifiers (TF compares UTF-8 bytes).
    assert index.query_with_exclusions(QUERY, [[b"d", b"b"]])[1].tolist() == [["a", "c"]]
    # Integer identifiers, and one row of exclusions shared by two queries.
    index = BruteForce(k=2).index(CANDIDATES)
    scores, ids = index.query_with_exclusions(torch.cat([QUERY, QUERY]), torch.tensor([[3, 0]]))
    assert ids.tolist() == [[2, 4], [2, 4]] and scores.tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_query_with_exclusions_returns_excluded_when_too_few() -> None:
    # Streaming over 3 candidates (scores c0..c2 = 2, 1, 2), k=3, exclude c0: retrieve min(3 + 1, 3) = 3 ->
    # [c0, c2, c1]; c0 is pushed last but still returned, with its original score 2.
    index = Streaming(k=3).index_from_dataset([CANDIDATES[:3]])
    scores, ids = index.query_with_exclusions(QUERY, [[0]])
    assert ids.tolist() == [[2, 1, 0]] and scores.tolist() == [[2.0, 1.0, 2.0]]


def test_query_model_on_raw_strings() -> None:
    class Tower(nn.Module):
        """Maps user names to embeddings, as a converted StringLookup + Embedding tower would."""

        def __init__(self) -> None:
            super().__init__()
            self.vocab = {"ann": 0, "bob": 1}
            self.embedding = nn.Embedding(2, 2)
            with torch.no_grad():
                self.embedding.weight.copy_(torch.tensor([[2.0, 1.0], [0.0, 1.0]]))

        def forward(self, names: list[str]) -> torch.Tensor:
            return self.embedding(torch.tensor([self.vocab[n] for n in names]))

    index = BruteForce(Tower(), k=2).index(CANDIDATES, STR_IDS)
    scores, ids = index(["ann", "bob"])
    # bob = (0, 1): c4 -> 2, then c1 and c3 -> 1 (c1 first).
    assert ids.tolist() == [["d", "a"], ["e", "b"]] and scores.tolist() == [[3.0, 2.0], [2.0, 1.0]]
    assert index.query_with_exclusions(["bob"], [["e"]])[1].tolist() == [["b", "d"]]
    streaming = Streaming(Tower(), k=2).index_from_dataset(_batches(2, STR_IDS))
    assert streaming(["ann", "bob"])[1].tolist() == [["d", "a"], ["e", "b"]]


def test_index_from_dataset_inputs() -> None:
    def generate() -> Iterator[torch.Tensor]:
        yield from _batches(2)

    for source in (_batches(2), generate(), DataLoader(TensorDataset(CANDIDATES), batch_size=2)):
        if isinstance(source, DataLoader):
            source = (batch[0] for batch in source)  # TensorDataset yields 1-element lists
        assert BruteForce(k=3).index_from_dataset(source)(QUERY)[1].tolist() == [ORDER[:3]]
    ids = torch.arange(5) + 100
    loader = DataLoader(
        TensorDataset(ids, CANDIDATES), batch_size=2
    )  # yields [ids, embeddings] lists
    assert BruteForce(k=2).index_from_dataset(loader)(QUERY)[1].tolist() == [[103, 100]]
    streaming = Streaming(k=2).index_from_dataset(loader)
    assert streaming(QUERY)[1].tolist() == [[103, 100]]
    assert streaming(QUERY)[1].tolist() == [[103, 100]]  # the DataLoader is walked again
    one_shot = Streaming(k=2).index_from_dataset(generate())
    assert one_shot(QUERY)[1].tolist() == one_shot(QUERY)[1].tolist() == [ORDER[:2]]
    strings = BruteForce(k=2).index_from_dataset(_batches(2, STR_IDS))
    assert strings(QUERY)[1].tolist() == [["d", "a"]]


def test_streaming_returns_fewer_than_k_like_tfrs() -> None:
    # TFRS Streaming with handle_incomplete_batches=True caps k at the corpus size (k_ = min(k, n)).
    scores, ids = Streaming(k=10).index_from_dataset(_batches(2))(QUERY)
    assert ids.tolist() == [ORDER] and scores.tolist() == [ORDER_SCORES]
    scores, ids = Streaming(k=3).index_from_dataset([])(
        QUERY
    )  # empty dataset: TFRS's initial state
    assert scores.shape == (1, 0) and ids.shape == (1, 0)


def test_state_dict_round_trip() -> None:
    index = BruteForce(k=2).index(CANDIDATES, torch.tensor([5, 6, 7, 8, 9]))
    state = index.state_dict()
    assert set(state) == {"candidates", "identifiers"}
    fresh = BruteForce(k=2)
    fresh.load_state_dict(
        {"candidates": state["candidates"], "identifiers": state["identifiers"].int()}
    )
    scores, ids = fresh(QUERY)
    assert ids.dtype == torch.int64 and ids.tolist() == [[8, 5]] and scores.tolist() == [[3.0, 2.0]]
    # Default identifiers are stored as positions (TFRS stores tf.range as the `identifiers` variable).
    assert torch.equal(BruteForce().index(CANDIDATES).state_dict()["identifiers"], torch.arange(5))
    # String identifiers are not tensors: only the candidates are in the state dict.
    strings = BruteForce(k=1).index(CANDIDATES, STR_IDS)
    assert set(strings.state_dict()) == {"candidates"}
    assert strings.string_identifiers is not None and strings.string_identifiers.tolist() == STR_IDS
    # A shorter corpus replaces the string identifiers' candidates: the mismatch is reported at query time.
    strings.load_state_dict({"candidates": CANDIDATES[:3]})
    with pytest.raises(ValueError, match=r"holds 3 candidates but 5 string identifiers"):
        strings(QUERY)
    with pytest.raises(RuntimeError, match="Missing key"):
        BruteForce().index(CANDIDATES).load_state_dict({"candidates": CANDIDATES})


def test_gradients_flow_to_queries() -> None:
    # d(sum of top-2 scores)/dq = c3 + c0 = (2, 1) for both layers.
    for index in (
        BruteForce(k=2).index(CANDIDATES),
        Streaming(k=2).index_from_dataset(_batches(2)),
    ):
        query = QUERY.clone().requires_grad_()
        scores, _ = index(query)
        scores.sum().backward()
        assert query.grad is not None and query.grad.tolist() == [[2.0, 1.0]]


def test_misc_api() -> None:
    assert BruteForce().is_exact() and Streaming().is_exact()
    assert BruteForce().name == "brute_force" and BruteForce(name="idx").name == "idx"
    assert Streaming().name == "streaming"
    assert isinstance(BruteForce(), TopK)
    index = BruteForce(k=2).index(CANDIDATES.double())
    assert (
        index(QUERY)[0].dtype == torch.float64
    )  # float32 queries are cast, as Keras autocasts inputs
    assert index(QUERY.numpy())[1].tolist() == [ORDER[:2]]
    from torchrs.layers import factorized_top_k, scann

    assert factorized_top_k.ScaNN is scann.ScaNN  # TFRS's path, re-exported lazily
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        _ = factorized_top_k.Nope
    with pytest.raises(TypeError, match="Can't instantiate abstract class"):
        TopK(k=1)  # type: ignore[abstract]


# ----------------------------------------------------------------------------- errors


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"The candidates tensor must be 2D \(got \(5,\)\)"):
        BruteForce().index(torch.zeros(5))
    with pytest.raises(
        ValueError, match=r"same number of rows \(got 5 candidates rows and 4 identifier rows\)"
    ):
        BruteForce().index(CANDIDATES, torch.arange(4))
    with pytest.raises(TypeError, match=r"integers or strings \(got dtype torch.float32\)"):
        BruteForce().index(CANDIDATES, torch.zeros(5))
    with pytest.raises(TypeError, match="mixes strings"):
        BruteForce().index(CANDIDATES, ["a", 1, "c", "d", "e"])
    with pytest.raises(TypeError, match="floating point embeddings"):
        BruteForce().index(torch.zeros(5, 2, dtype=torch.long))
    index = BruteForce(k=2).index(CANDIDATES)
    with pytest.raises(
        ValueError, match=r"shape \(1, 3\) do not match the indexed candidates of shape \(5, 2\)"
    ):
        index(torch.zeros(1, 3))
    with pytest.raises(
        ValueError, match=r"k=6 candidates, but the index holds only 5\. Pass a smaller `k`"
    ):
        index(QUERY, k=6)
    with pytest.raises(ValueError, match=r"k \+ the number of exclusions"):
        index.query_with_exclusions(QUERY, [[0, 1]], k=4)
    with pytest.raises(ValueError, match=r"positive number of candidates to retrieve \(got k=0\)"):
        index(QUERY, k=0)
    with pytest.raises(ValueError, match=r"got k=-1"):
        BruteForce(k=-1)
    with pytest.raises(TypeError, match=r"`k` must be an int \(got 2.5"):
        index(QUERY, k=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"2-D \(num_queries, dim\) tensor \(got shape \(2,\)\)"):
        index(torch.zeros(2))
    with pytest.raises(TypeError, match="Queries must be a tensor"):
        index([[1.0, 0.0]])
    with pytest.raises(TypeError, match="Unexpected keyword arguments \\['trainable'\\]"):
        BruteForce.__mro__[1].__init__(BruteForce(), k=1, trainable=False)  # TopK.__init__


def test_errors_before_index() -> None:
    with pytest.raises(ValueError, match=r"The `index` method must be called first"):
        BruteForce()(QUERY)
    with pytest.raises(ValueError, match=r"The `index` method must be called first"):
        Streaming()(QUERY)


def test_streaming_errors() -> None:
    with pytest.raises(
        NotImplementedError, match=r"only accepts datasets\. Please call `index_from_dataset`"
    ):
        Streaming().index(CANDIDATES)
    with pytest.raises(
        ValueError, match=r"candidate embeddings or tuples of .* Got a tuple of 3 items"
    ):
        Streaming().index_from_dataset([(torch.arange(2), CANDIDATES[:2], 0)])
    with pytest.raises(ValueError, match=r"Got a mix of batches with and without identifiers"):
        Streaming().index_from_dataset([CANDIDATES[:2], (torch.arange(2), CANDIDATES[2:4])])
    with pytest.raises(ValueError, match=r"same batch dimension\. Got 2 and 3"):
        Streaming().index_from_dataset([(torch.arange(3), CANDIDATES[:2])])
    with pytest.raises(TypeError, match="call `index` instead"):
        Streaming().index_from_dataset(CANDIDATES)
    loader = DataLoader(TensorDataset(torch.arange(5), CANDIDATES, CANDIDATES), batch_size=2)
    with pytest.raises(ValueError, match=r"Got a list of 3 items"):
        Streaming().index_from_dataset(loader)(QUERY)  # checked as the batches are read
    strict = Streaming(k=2, handle_incomplete_batches=False).index_from_dataset(_batches(2))
    with pytest.raises(
        ValueError, match=r"Tried to retrieve k=2 top items, but the candidate dataset batch size"
    ):
        strict(QUERY)  # last batch holds 1 candidate
    with pytest.raises(
        ValueError, match=r"\(1, 3\) do not match a candidate batch of shape \(2, 2\)"
    ):
        Streaming().index_from_dataset(_batches(2))(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"yielded no batches"):
        BruteForce().index_from_dataset([])


def test_exclusion_errors() -> None:
    index = BruteForce(k=2).index(CANDIDATES)
    with pytest.raises(ValueError, match=r"rank-2 .* \(got shape \(2,\)\); wrap a single query's"):
        index.query_with_exclusions(QUERY, [0, 1])
    with pytest.raises(ValueError, match=r"`exclusions` has 2 rows but there are 3 queries"):
        index.query_with_exclusions(torch.cat([QUERY] * 3), [[0], [1]])
    with pytest.raises(TypeError, match="integer identifiers: `exclusions` must be integers too"):
        index.query_with_exclusions(QUERY, [["a"]])
    with pytest.raises(
        TypeError, match="string identifiers: `exclusions` must be str or bytes too"
    ):
        BruteForce(k=2).index(CANDIDATES, STR_IDS).query_with_exclusions(QUERY, [[1]])
    with pytest.raises(
        TypeError, match=r"integer or string identifiers \(got dtype torch.float64\)"
    ):
        index.query_with_exclusions(QUERY, [[1.5]])


# ----------------------------------------------------------------------------- TFRS reference
# Identifiers must be identical to TFRS's. Scores are compared to 1e-6 relative: both sides compute
# float32 dot products, whose summation order (blocking, FMA) may differ between TF's and torch's
# kernels; with the shapes below they measured bit-identical (max relative difference 0), so the
# tolerance only guards against a kernel change.
SCORE_RTOL = 1e-6


def _tf_ids(ids, positions: bool = False):
    """What TF takes for identifiers: bytes for strings; int32 for positions (TFRS's default tf.range)."""
    if ids is not None and ids.dtype == object:
        return ids.astype(bytes)
    return ids.astype(np.int32) if positions else ids


def _np(ids) -> np.ndarray:
    return ids if isinstance(ids, np.ndarray) else ids.numpy()


def _corpus(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray | None]]:
    rng = np.random.default_rng(seed)
    candidates = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(24, 16)).astype(np.float32)
    ids = {
        "none": None,
        "int": (rng.permutation(300) * 3 + 1).astype(np.int64),
        "bytes": np.array([f"item-{i}".encode() for i in rng.permutation(300)], dtype=object),
    }
    return candidates, queries, ids


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("id_kind", ["none", "int", "bytes"])
def test_brute_force_matches_tfrs(tf, tfrs, seed: int, id_kind: str) -> None:
    candidates, queries, all_ids = _corpus(seed)
    ids = all_ids[id_kind]
    tf_index = tfrs.layers.factorized_top_k.BruteForce(k=10)
    tf_index.index(tf.constant(candidates), None if ids is None else tf.constant(_tf_ids(ids)))
    index = BruteForce(k=10).index(torch.from_numpy(candidates), ids)
    for k in (1, 5, 10, 50):
        tf_scores, tf_ids = tf_index(tf.constant(queries), k=k)
        scores, got_ids = index(torch.from_numpy(queries), k=k)
        np.testing.assert_array_equal(_np(got_ids), tf_ids.numpy())
        np.testing.assert_allclose(scores.numpy(), tf_scores.numpy(), rtol=SCORE_RTOL, atol=0)
        # Exclusions: some retrieved identifiers (so they matter) plus some from anywhere.
        retrieved = tf_ids.numpy()
        pool = np.arange(300) if ids is None else ids
        exclusions = np.concatenate(
            [retrieved[:, ::2][:, :3], pool[np.arange(24 * 2).reshape(24, 2)]], axis=1
        )
        tf_scores, tf_ids = tf_index.query_with_exclusions(
            tf.constant(queries), tf.constant(_tf_ids(exclusions, positions=ids is None)), k=k
        )
        scores, got_ids = index.query_with_exclusions(torch.from_numpy(queries), exclusions, k=k)
        np.testing.assert_array_equal(_np(got_ids), tf_ids.numpy())
        np.testing.assert_allclose(scores.numpy(), tf_scores.numpy(), rtol=SCORE_RTOL, atol=0)


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("id_kind", ["none", "int", "bytes"])
def test_streaming_matches_tfrs(tf, tfrs, seed: int, id_kind: str) -> None:
    candidates, queries, all_ids = _corpus(seed)
    ids = all_ids[id_kind]
    for batch_size in (7, 64, 100, 300):  # 7, 64 and 100 leave an incomplete last batch
        source = candidates if ids is None else (_tf_ids(ids), candidates)
        tf_index = tfrs.layers.factorized_top_k.Streaming(k=10)
        tf_index.index_from_dataset(tf.data.Dataset.from_tensor_slices(source).batch(batch_size))
        batches = [
            torch.from_numpy(candidates[i : i + batch_size])
            if ids is None
            else (ids[i : i + batch_size], torch.from_numpy(candidates[i : i + batch_size]))
            for i in range(0, 300, batch_size)
        ]
        index = Streaming(k=10).index_from_dataset(batches)
        for k in (1, 10, 50):
            tf_scores, tf_ids = tf_index(tf.constant(queries), k=k)
            scores, got_ids = index(torch.from_numpy(queries), k=k)
            np.testing.assert_array_equal(_np(got_ids), tf_ids.numpy())
            np.testing.assert_allclose(scores.numpy(), tf_scores.numpy(), rtol=SCORE_RTOL, atol=0)
        exclusions = tf_ids.numpy()[:, :4]
        tf_scores, tf_ids = tf_index.query_with_exclusions(
            tf.constant(queries), tf.constant(exclusions), k=5
        )
        scores, got_ids = index.query_with_exclusions(torch.from_numpy(queries), exclusions, k=5)
        np.testing.assert_array_equal(_np(got_ids), tf_ids.numpy())
        np.testing.assert_allclose(scores.numpy(), tf_scores.numpy(), rtol=SCORE_RTOL, atol=0)


@pytest.mark.tf
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ties_match_tfrs(tf, tfrs, seed: int) -> None:
    # Small-integer embeddings with many duplicate rows: every score is exact in float32 on both sides
    # (so scores must be equal, not just close) and ties are everywhere, including at the k-th place.
    rng = np.random.default_rng(seed)
    candidates = rng.integers(-2, 3, size=(200, 4)).astype(np.float32)
    candidates[100:160] = candidates[rng.integers(0, 100, 60)]
    queries = rng.integers(-2, 3, size=(16, 4)).astype(np.float32)
    tf_brute = tfrs.layers.factorized_top_k.BruteForce(k=10)
    tf_brute.index(tf.constant(candidates))
    brute = BruteForce(k=10).index(torch.from_numpy(candidates))
    tf_stream = tfrs.layers.factorized_top_k.Streaming(k=10)
    tf_stream.index_from_dataset(tf.data.Dataset.from_tensor_slices(candidates).batch(30))
    stream = Streaming(k=10).index_from_dataset(
        [torch.from_numpy(candidates[i : i + 30]) for i in range(0, 200, 30)]
    )
    for tf_index, index in ((tf_brute, brute), (tf_stream, stream)):
        for k in (1, 3, 10, 40):
            tf_scores, tf_ids = tf_index(tf.constant(queries), k=k)
            scores, ids = index(torch.from_numpy(queries), k=k)
            np.testing.assert_array_equal(ids.numpy(), tf_ids.numpy())
            np.testing.assert_array_equal(scores.numpy(), tf_scores.numpy())
        exclusions = rng.integers(0, 200, size=(16, 5))
        tf_exclusions = tf.constant(exclusions.astype(np.int32))  # TFRS's positions are int32
        tf_scores, tf_ids = tf_index.query_with_exclusions(tf.constant(queries), tf_exclusions, k=7)
        scores, ids = index.query_with_exclusions(torch.from_numpy(queries), exclusions, k=7)
        np.testing.assert_array_equal(ids.numpy(), tf_ids.numpy())
        np.testing.assert_array_equal(scores.numpy(), tf_scores.numpy())


@pytest.mark.tf
def test_streaming_edge_cases_match_tfrs(tf, tfrs) -> None:
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(20, 4)).astype(np.float32)
    queries = rng.normal(size=(3, 4)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(candidates).batch(8)
    batches = [torch.from_numpy(candidates[i : i + 8]) for i in range(0, 20, 8)]
    # k larger than the corpus: TFRS returns all 20 candidates.
    tf_index = tfrs.layers.factorized_top_k.Streaming(k=30)
    tf_index.index_from_dataset(dataset)
    tf_scores, tf_ids = tf_index(tf.constant(queries))
    scores, ids = Streaming(k=30).index_from_dataset(batches)(torch.from_numpy(queries))
    assert ids.shape == (3, 20)
    np.testing.assert_array_equal(ids.numpy(), tf_ids.numpy())
    np.testing.assert_allclose(scores.numpy(), tf_scores.numpy(), rtol=SCORE_RTOL, atol=0)
    # sorted_order=False: TFRS's order is unspecified; the sets agree and torchrs's order is sorted.
    tf_index = tfrs.layers.factorized_top_k.Streaming(k=6, sorted_order=False)
    tf_index.index_from_dataset(dataset)
    _, tf_ids = tf_index(tf.constant(queries))
    scores, ids = Streaming(k=6, sorted_order=False).index_from_dataset(batches)(
        torch.from_numpy(queries)
    )
    np.testing.assert_array_equal(np.sort(ids.numpy(), axis=1), np.sort(tf_ids.numpy(), axis=1))
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())
    # handle_incomplete_batches=False with a last batch of 4 < k: both raise with TFRS's message.
    tf_index = tfrs.layers.factorized_top_k.Streaming(k=5, handle_incomplete_batches=False)
    tf_index.index_from_dataset(dataset)
    with pytest.raises(ValueError, match="batch size is too small"):
        tf_index(tf.constant(queries))
    with pytest.raises(ValueError, match="batch size is too small"):
        Streaming(k=5, handle_incomplete_batches=False).index_from_dataset(batches)(
            torch.from_numpy(queries)
        )
    # BruteForce with k larger than the corpus: TFRS raises InvalidArgumentError, torchrs a ValueError.
    tf_brute = tfrs.layers.factorized_top_k.BruteForce(k=30)
    tf_brute.index(tf.constant(candidates))
    with pytest.raises(tf.errors.InvalidArgumentError, match="input must have at least k columns"):
        tf_brute(tf.constant(queries))
    with pytest.raises(ValueError, match="k=30 candidates, but the index holds only 20"):
        BruteForce(k=30).index(torch.from_numpy(candidates))(torch.from_numpy(queries))
