"""Tests for torchrs.data.movielens (synthetic set, raw-file readers, tfds order, splits, batches).

Fake MovieLens files are written to tmp_path from the few lines below; real MovieLens data is
never used or committed. Tests marked ``tf`` compare against tensorflow_datasets, tf.data and
TFRS; all comparisons there are exact (the values are ids, strings and file-parsed numbers).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from torchrs.data import movielens as ml
from torchrs.data import tf_movielens as tfml

# --------------------------------------------------------------------------------------
# Tiny fake MovieLens files (a handful of made-up lines in each real format).
# --------------------------------------------------------------------------------------
FLAGS_TOY_STORY = "0|0|0|1|1|1|" + "|".join("0" * 13)  # Animation, Children, Comedy
FLAGS_GOLDENEYE = "0|1|1|" + "|".join("0" * 13) + "|1|0|0"  # Action, Adventure, Thriller
FLAGS_MISERABLES = "|".join("0" * 8) + "|1|" + "|".join("0" * 8) + "|1|0"  # Drama, War
FLAGS_UNKNOWN = "1|" + "|".join("0" * 18)
FLAGS_NONE = "|".join("0" * 19)
ML_100K = {
    "u.item": (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|{FLAGS_TOY_STORY}\n"
        f"2|GoldenEye (1995)|01-Jan-1995||http://x|{FLAGS_GOLDENEYE}\n"
        f"3|Misérables, Les (1995)|01-Jan-1995||http://x|{FLAGS_MISERABLES}\n"
        f"4|unknown||||{FLAGS_UNKNOWN}\n"
        f"5|Nothing At All (1990)|01-Jan-1990||http://x|{FLAGS_NONE}\n"
    ),
    "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n3|17|M|student|T8H1N\n",
    "u.data": (
        "1\t1\t5\t874965758\n2\t3\t3\t876893171\n1\t2\t4\t878542960\n"
        "3\t1\t1\t888717742\n1\t3\t2\t875071561\n3\t5\t4\t880000000\n"
    ),
}
ML_1M = {
    "movies.dat": (
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
        "3::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n"
    ),
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::4::55117\n",
    "ratings.dat": (
        "1::1::5::978300760\n2::3::3::978302109\n3::2::4::978301968\n1::2::1::978824291\n"
    ),
}
ML_LATEST = {
    "movies.csv": (
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '2,"American President, The (1995)",Comedy|Drama|Romance\n'
        "3,Some Documentary (2015),(no genres listed)\n"
        "4,Tron 3D (2010),Action|IMAX\n"
    ),
    "ratings.csv": (
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n1,3,3.5,964981247\n2,2,0.5,964982224\n2,4,5.0,964983815\n"
    ),
}
LATIN1_FORMATS = {"ml-100k", "ml-1m"}


def write_movielens(parent: Path, name: str, files: dict[str, str]) -> Path:
    """Writes fake files into parent/name (Latin-1 for ml-100k/ml-1m, like GroupLens)."""
    directory = parent / name
    directory.mkdir(parents=True, exist_ok=True)
    for filename, text in files.items():
        encoding = "latin-1" if name in LATIN1_FORMATS else "utf-8"
        (directory / filename).write_bytes(text.encode(encoding))
    return directory


@pytest.fixture(scope="module")
def synthetic() -> ml.Ratings:
    return ml.load()


@pytest.fixture()
def ml100k(tmp_path: Path) -> Path:
    return write_movielens(tmp_path, "ml-100k", ML_100K)


@pytest.fixture()
def ml1m(tmp_path: Path) -> Path:
    return write_movielens(tmp_path, "ml-1m", ML_1M)


@pytest.fixture()
def mllatest(tmp_path: Path) -> Path:
    return write_movielens(tmp_path, "ml-latest-small", ML_LATEST)


def table_digest(table: ml.Ratings | ml.Movies) -> str:
    """sha256 over every column's values, for bit-identity checks."""
    h = hashlib.sha256()
    for name in table.columns:
        values = table[name]
        h.update(name.encode())
        if values.dtype != object:
            h.update(np.ascontiguousarray(values).tobytes())
        elif isinstance(values[0], str):
            h.update("\x00".join(values.tolist()).encode("utf-8"))
        else:
            h.update(np.concatenate(values.tolist()).tobytes())
            h.update(np.array([len(v) for v in values]).tobytes())
    return h.hexdigest()


def assert_tables_equal(a: ml.Ratings | ml.Movies, b: ml.Ratings | ml.Movies) -> None:
    assert type(a) is type(b)
    assert a.columns == b.columns
    for name in a.columns:
        x, y = a[name], b[name]
        assert x.dtype == y.dtype, name
        if name == "movie_genres":
            assert [v.tolist() for v in x] == [v.tolist() for v in y]
            assert all(v.dtype == np.int64 for v in (*x, *y))
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


# --------------------------------------------------------------------------------------
# Synthetic set
# --------------------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_seeded(synthetic: ml.Ratings) -> None:
    again = ml.synthetic_ratings()
    assert_tables_equal(synthetic, again)
    other = ml.synthetic_ratings(seed=7)
    assert not np.array_equal(synthetic["user_rating"], other["user_rating"])
    assert not np.array_equal(synthetic["movie_title"], other["movie_title"])


# sha256 (table_digest) of the default synthetic set and of a small one, recorded once.
GOLDEN_DEFAULT_DIGEST = "5f8193c1501b391f5c83c5d917c5541fec386589ac94404955c92d9b82eeb9cc"
GOLDEN_SMALL_DIGEST = "cb59270bd3bc7de9ea81342dc084de1275d3bacbe526a8fbf2486166362cbc5d"


def test_synthetic_golden_digest(synthetic: ml.Ratings) -> None:
    # Bit-identity across runs, machines and NumPy versions: only PCG64's raw stream (through
    # Generator.random) and IEEE arithmetic feed the generator. If a digest changes, the
    # synthetic set changed: every recorded parity figure on it must be regenerated.
    assert table_digest(synthetic) == GOLDEN_DEFAULT_DIGEST
    small = ml.synthetic_ratings(num_users=40, num_movies=60, num_ratings=1_500, seed=3)
    assert table_digest(small) == GOLDEN_SMALL_DIGEST


def test_synthetic_schema_matches_tfds_100k(synthetic: ml.Ratings) -> None:
    assert synthetic.columns == ml.ML_100K_RATINGS_COLUMNS
    for name in synthetic.columns:
        kind = ml.COLUMN_KINDS[name]
        values = synthetic[name]
        if kind == "str":
            assert values.dtype == object and all(type(v) is str for v in values[:1000])
        elif kind == "int64_list":
            assert all(v.dtype == np.int64 and v.ndim == 1 for v in values[:1000])
        else:
            assert values.dtype == np.dtype(kind), name
    genres = np.concatenate(synthetic["movie_genres"].tolist())
    assert genres.min() >= 0 and genres.max() < len(ml.GENRES)
    assert set(np.unique(synthetic["bucketized_user_age"])) <= set(map(float, ml.AGE_BUCKETS))
    assert set(np.unique(synthetic["user_rating"])) == {1.0, 2.0, 3.0, 4.0, 5.0}
    labels = synthetic["user_occupation_label"]
    assert labels.min() >= 0 and labels.max() < len(ml.OCCUPATIONS)


def test_synthetic_rows_are_consistent(synthetic: ml.Ratings) -> None:
    # Every user's demographics and every movie's title/genres are the same on all its rows.
    for key, dependents in (
        ("user_id", ("user_gender", "raw_user_age", "user_occupation_text", "user_zip_code")),
        ("movie_id", ("movie_title",)),
    ):
        for dep in dependents:
            pairs = {(k, v) for k, v in zip(synthetic[key], synthetic[dep], strict=True)}
            assert len(pairs) == len(set(synthetic[key])), (key, dep)
    texts = synthetic["user_occupation_text"]
    expected = [ml.OCCUPATIONS.index(ml.OCCUPATION_100K_TO_LABEL[t]) for t in texts]
    np.testing.assert_array_equal(synthetic["user_occupation_label"], expected)
    np.testing.assert_array_equal(
        synthetic["bucketized_user_age"], ml.bucketize_age(synthetic["raw_user_age"])
    )
    pairs = set(zip(synthetic["user_id"], synthetic["movie_id"], strict=True))
    assert len(pairs) == len(synthetic)  # nobody rates a movie twice
    movies = ml.synthetic_movies()
    title_of = dict(zip(movies["movie_id"], movies["movie_title"], strict=True))
    assert all(
        title_of[m] == t
        for m, t in zip(synthetic["movie_id"], synthetic["movie_title"], strict=True)
    )


def test_synthetic_sizes_and_ranges(synthetic: ml.Ratings) -> None:
    assert len(synthetic) == 100_000
    assert len(set(synthetic["user_id"])) == 943
    assert {int(m) for m in synthetic["movie_id"]} <= set(range(1, 1683))
    # ml-100k's first and last timestamps: 1997-09-20 .. 1998-04-22 (UTC).
    assert synthetic["timestamp"].min() >= 874_724_710
    assert synthetic["timestamp"].max() <= 893_286_638
    small = ml.load(num_users=10, num_movies=30, num_ratings=250, seed=1)
    assert len(small) == 250 and len(set(small["user_id"])) == 10


def test_synthetic_movies_titles_unique_with_years() -> None:
    movies = ml.synthetic_movies()
    titles = movies["movie_title"].tolist()
    assert len(set(titles)) == len(titles) == 1682
    assert all(
        t[-6] == "(" and t[-5:-1].isdigit() and 1926 <= int(t[-5:-1]) <= 1998 for t in titles
    )
    assert movies.columns == ml.MOVIES_COLUMNS
    assert all(1 <= len(g) <= 4 and len(set(g)) == len(g) for g in movies["movie_genres"])
    # More movies than distinct title patterns: sequels keep titles unique.
    many = ml.synthetic_movies(num_movies=30_000)["movie_title"]
    assert len(set(many.tolist())) == 30_000


def test_synthetic_skew_like_ml100k(synthetic: ml.Ratings) -> None:
    per_movie = np.sort(np.unique(synthetic["movie_id"], return_counts=True)[1])[::-1]
    assert per_movie[:168].sum() / len(synthetic) > 0.40  # top 10% of 1682 movies
    per_user = np.unique(synthetic["user_id"], return_counts=True)[1]
    assert per_user.min() >= 20  # ml-100k: every user has at least 20 ratings
    assert per_user.max() <= 737  # ... and the most active one has 737
    assert np.median(per_user) < per_user.mean()  # heavy right tail


def test_synthetic_rating_distribution(synthetic: ml.Ratings) -> None:
    # Stars are an ordinal cut at the quantiles of ml-100k's shares: the counts are
    # diff(round(cumsum(0.0611, 0.1137, 0.27145, 0.34174) * 100_000)) and the remainder:
    # 6110, 17480 - 6110 = 11370, 44625 - 17480 = 27145, 78799 - 44625 = 34174, 21201.
    counts = np.bincount(synthetic["user_rating"].astype(np.int64), minlength=6)[1:]
    np.testing.assert_array_equal(counts, [6110, 11370, 27145, 34174, 21201])
    # Mean = (6110 + 2*11370 + 3*27145 + 4*34174 + 5*21201) / 100000 = 3.52986.
    assert synthetic["user_rating"].mean() == pytest.approx(3.52986, abs=1e-6)


def test_synthetic_is_learnable(synthetic: ml.Ratings) -> None:
    train, test = ml.shuffle_split(synthetic)
    uid = lambda t: t["user_id"].astype(np.int64) - 1  # noqa: E731
    mid = lambda t: t["movie_id"].astype(np.int64) - 1  # noqa: E731
    y_train, y_test = train["user_rating"].astype(np.float64), test["user_rating"]
    mean = y_train.mean()
    rmse_mean = np.sqrt(np.mean((y_test - mean) ** 2))
    # Rating: user + movie biases (a few alternating shrunk means) beat the global mean.
    user_bias, movie_bias = np.zeros(943), np.zeros(1682)
    for _ in range(5):
        residual = y_train - mean - user_bias[uid(train)]
        movie_bias = np.bincount(mid(train), residual, 1682) / (
            np.bincount(mid(train), minlength=1682) + 5
        )
        residual = y_train - mean - movie_bias[mid(train)]
        user_bias = np.bincount(uid(train), residual, 943) / (
            np.bincount(uid(train), minlength=943) + 5
        )
    pred = mean + user_bias[uid(test)] + movie_bias[mid(test)]
    assert np.sqrt(np.mean((y_test - pred) ** 2)) < 0.9 * rmse_mean  # measured 0.80x
    # Retrieval top-100: popularity beats random (100 / 1682 = 5.9%) and a rank-8 SVD of the
    # user x movie matrix beats popularity, so the data has personal taste to learn.
    seen = np.zeros((943, 1682))
    seen[uid(train), mid(train)] = 1.0
    popular = np.argsort(-seen.sum(axis=0), kind="stable")[:100]
    hit_popular = np.isin(mid(test), popular).mean()
    _, vectors = np.linalg.eigh(seen @ seen.T)
    top = vectors[:, -8:]
    scores = top @ (top.T @ seen)  # (users, movies)
    positive = scores[uid(test), mid(test)]
    ranked = np.sort(scores, axis=1)
    higher = np.array(
        [
            1682 - np.searchsorted(ranked[u], p, side="right")
            for u, p in zip(uid(test), positive, strict=True)
        ]
    )
    hit_svd = (higher < 100).mean()
    assert hit_popular > 3 * 100 / 1682  # measured 0.33
    assert hit_svd > hit_popular + 0.05  # measured 0.43


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_ratings": 100}, r"num_ratings must lie in .* = \[18860, 1586126\] \(got 100\)"),
        ({"num_movies": 3}, r"min_ratings_per_user \(20\) cannot exceed num_movies \(3\)"),
        ({"min_ratings_per_user": 0}, r"min_ratings_per_user must be a positive integer"),
        ({"seed": -1}, r"seed must be a non-negative integer \(got -1\)"),
        ({"num_users": True}, r"num_users must be a positive integer \(got True\)"),
        ({"num_movies": 2.5}, r"num_movies must be a positive integer"),
    ],
)
def test_synthetic_rejects_bad_sizes(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ml.synthetic_ratings(**kwargs)


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------
def test_table_take_select_to_dict() -> None:
    table = ml.Ratings(
        {
            "user_id": ml.strings(["1", "2", "3"]),
            "user_rating": np.array([1.0, 2.0, 3.0], np.float32),
            "movie_genres": ml.ragged([[0], [1, 2], []]),
        }
    )
    picked = table.take([2, 0, 0, -1])
    assert picked["user_id"].tolist() == ["3", "1", "1", "3"]
    assert [g.tolist() for g in picked["movie_genres"]] == [[], [0], [0], []]
    assert table.select(["user_rating"]).columns == ("user_rating",)
    assert set(table.to_dict()) == {"user_id", "user_rating", "movie_genres"}
    assert "user_id" in table and len(table) == 3
    with pytest.raises(ValueError, match="read-only"):
        table["user_rating"][0] = 5.0
    with pytest.raises(IndexError, match=r"indices must lie in \[-3, 3\).*max 3"):
        table.take([3])
    with pytest.raises(TypeError, match="indices must be a 1-D array of integers"):
        table.take([0.5])
    with pytest.raises(KeyError, match="has no column 'movie_id'"):
        table["movie_id"]
    with pytest.raises(KeyError, match=r"no column\(s\) \['x'\]"):
        table.select(["x"])


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"user_rating": np.array([1.0])}, TypeError, "must have dtype float32 like tfds"),
        ({"user_id": np.array(["1"])}, TypeError, "must be an object array of str"),
        ({"user_id": ["1"]}, TypeError, "must be a NumPy array"),
        ({"timestamp": np.zeros((2, 2), np.int64)}, ValueError, r"must be 1-D.*\(2, 2\)"),
        (
            {"timestamp": np.zeros(2, np.int64), "user_gender": np.zeros(3, bool)},
            ValueError,
            "same length",
        ),
    ],
)
def test_table_rejects_bad_columns(data: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ml.Ratings(data)


# --------------------------------------------------------------------------------------
# Raw-file readers
# --------------------------------------------------------------------------------------
def test_read_100k(ml100k: Path) -> None:
    ratings = ml.load(ml100k, order="file")
    assert ratings.columns == ml.ML_100K_RATINGS_COLUMNS
    assert ratings["user_id"].tolist() == ["1", "2", "1", "3", "1", "3"]
    assert ratings["movie_id"].tolist() == ["1", "3", "2", "1", "3", "5"]
    np.testing.assert_array_equal(ratings["user_rating"], np.float32([5, 3, 4, 1, 2, 4]))
    assert ratings["timestamp"].dtype == np.int64 and ratings["timestamp"][0] == 874965758
    # u.item flags -> tfds genre ids: Toy Story = Animation 2, Children 3, Comedy 4;
    # GoldenEye = Action 0, Adventure 1, Thriller 16; Misérables = Drama 7, War 18;
    # "unknown" = Unknown 17; no flag set -> no genre.
    genres = {
        m: g.tolist() for m, g in zip(ratings["movie_id"], ratings["movie_genres"], strict=True)
    }
    assert genres == {"1": [2, 3, 4], "2": [0, 1, 16], "3": [7, 18], "5": []}
    assert ratings["movie_title"][1] == "Misérables, Les (1995)"  # Latin-1 decoded
    # u.user: age 24 -> bucket 18, 53 -> 50, 17 -> 1; technician -> "technician/engineer"
    # (label 18), other -> "other/not specified" (11), student -> 17; "M" -> True.
    assert ratings["raw_user_age"].tolist() == [24, 53, 24, 17, 24, 17]
    assert ratings["bucketized_user_age"].tolist() == [18, 50, 18, 1, 18, 1]
    assert ratings["user_occupation_label"].tolist() == [18, 11, 18, 17, 18, 17]
    assert ratings["user_occupation_text"].tolist()[:2] == ["technician", "other"]
    assert ratings["user_gender"].tolist() == [True, False, True, True, True, True]
    assert ratings["user_zip_code"][3] == "T8H1N"
    movies = ml.load(ml100k, "movies", order="file")
    assert movies["movie_title"].tolist()[3:] == ["unknown", "Nothing At All (1990)"]
    assert [g.tolist() for g in movies["movie_genres"]][3:] == [[17], []]


def test_read_1m(ml1m: Path) -> None:
    ratings = ml.load(ml1m, order="file")
    assert ratings.columns == ml.ML_1M_RATINGS_COLUMNS  # no raw_user_age in 1m
    assert ratings["user_id"].tolist() == ["1", "2", "3", "1"]
    np.testing.assert_array_equal(ratings["user_rating"], np.float32([5, 3, 4, 1]))
    # users.dat: age codes are tfds's buckets; code 10 = "K-12 student", 4 = "college/grad
    # student", both labelled "student" (17); code 16 = "self-employed" (label 16).
    assert ratings["bucketized_user_age"].tolist() == [1.0, 56.0, 25.0, 1.0]
    assert ratings["user_occupation_text"].tolist() == [
        "K-12 student",
        "self-employed",
        "college/grad student",
        "K-12 student",
    ]
    assert ratings["user_occupation_label"].tolist() == [17, 16, 17, 17]
    assert ratings["user_gender"].tolist() == [False, True, True, False]
    # "Children's" -> "Children" (3): Toy Story = Animation 2, Children 3, Comedy 4.
    assert ratings["movie_genres"][0].tolist() == [2, 3, 4]
    assert ratings["movie_title"][1] == "Cité des enfants perdus, La (1995)"
    movies = ml.load(ml1m, "movies", order="file")
    assert [g.tolist() for g in movies["movie_genres"]] == [[2, 3, 4], [1, 3, 8], [1, 15]]


def test_read_latest_small(mllatest: Path) -> None:
    ratings = ml.load(mllatest, order="file")
    assert ratings.columns == ml.LATEST_RATINGS_COLUMNS  # like tfds: no user features at all
    np.testing.assert_array_equal(ratings["user_rating"], np.float32([4.0, 3.5, 0.5, 5.0]))
    assert ratings["movie_title"][2] == "American President, The (1995)"  # quoted csv field
    # "(no genres listed)" is tfds label 20, IMAX 11.
    assert [g.tolist() for g in ratings["movie_genres"]][1:] == [[20], [4, 7, 14], [0, 11]]
    assert len(ml.load(mllatest, "movies")) == 4


def test_tfds_order(ml100k: Path) -> None:
    # tfds sorts rows by md5(b"train" + str(row)) as a 128-bit number; for rows 0..5 the
    # digests start 9318, bc4e, ec32, b0c1, 6af2, 3a53 (hashlib), so the order is 5, 4, 0, 3, 1, 2.
    digests = [hashlib.md5(b"train" + str(i).encode()).hexdigest() for i in range(6)]
    assert sorted(range(6), key=lambda i: digests[i]) == [5, 4, 0, 3, 1, 2]
    assert ml.tfds_order(6).tolist() == [5, 4, 0, 3, 1, 2]
    in_file = ml.load(ml100k, order="file")
    assert_tables_equal(ml.load(ml100k), in_file.take(ml.tfds_order(6)))


def test_tfds_order_interleaves_shards() -> None:
    # Two shards of 20 read by interleave(cycle_length=16, block_length=16): 16 from shard 0,
    # 16 from shard 1, then the last 4 of each.
    by_hash = ml.tfds_order(40)
    expected = np.concatenate([by_hash[0:16], by_hash[20:36], by_hash[16:20], by_hash[36:40]])
    np.testing.assert_array_equal(ml.tfds_order(40, num_shards=2), expected)
    with pytest.raises(ValueError, match=r"num_shards must lie in \[1, num_examples=3\]"):
        ml.tfds_order(3, num_shards=4)


def test_tfds_num_shards() -> None:
    mib = 1 << 20
    # Under 128 MiB (with 16 bytes per example): 1 shard. 310 MiB: 310 // 64 = 4 shards at
    # most, 0 at least -> the first of 512, .., 4 that fits is 4 (tfds's 1m-ratings).
    assert ml.tfds_num_shards(100 * mib, 100_000) == 1
    assert ml.tfds_num_shards(310 * mib, 1_000_209) == 4
    # 5 GiB: at least 5 shards (1 GiB max), at most 80 (64 MiB min) -> 64.
    assert ml.tfds_num_shards(5 * 1024 * mib, 20_000_000) == 64


def test_tfds_example_sizes_by_hand() -> None:
    # Toy Story: genres [2, 3, 4] -> Int64List 1+1+3 = 5, Feature 7, entry 1+1+12 (key) + 1+1+7
    # = 23, in the map 25; movie_id "1": BytesList 3, Feature 5, entry 10+7 = 17 -> 19;
    # title (16 bytes): BytesList 18, Feature 20, entry 13+22 = 35 -> 37. Features = 81,
    # Example = 1+1+81 = 83. Second row: no genres -> empty Int64List (0 bytes), Feature 2,
    # entry 14+4 = 18 -> 20; "2" -> 19; "é" (2 UTF-8 bytes) -> 4, 6, 13+8 = 21 -> 23; 62 -> 64.
    movies = ml.Movies(
        {
            "movie_genres": ml.ragged([[2, 3, 4], []]),
            "movie_id": ml.strings(["1", "2"]),
            "movie_title": ml.strings(["Toy Story (1995)", "é"]),
        }
    )
    assert ml.tfds_example_sizes(movies).tolist() == [83, 64]


def test_detect_format(ml100k: Path, ml1m: Path, mllatest: Path) -> None:
    assert ml.detect_format(ml100k) == "100k"
    assert ml.detect_format(ml1m) == "1m"
    assert ml.detect_format(mllatest) == "latest-small"


def test_load_errors(tmp_path: Path, ml100k: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ml.load(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="looks like a tfds name, but nothing can be"):
        ml.load("movielens/100k-ratings")
    with pytest.raises(ValueError, match="is a file; pass the directory"):
        ml.load(ml100k / "u.data")
    with pytest.raises(ValueError, match=r"It contains \['ml-100k'\]: pass one of those"):
        ml.load(tmp_path)
    (ml100k / "u.user").unlink()
    with pytest.raises(FileNotFoundError, match=r"MovieLens 100k .* lacks \['u.user'\]"):
        ml.load(ml100k)
    assert len(ml.load(ml100k, "movies")) == 5  # the movies table needs only u.item
    with pytest.raises(ValueError, match=r"table must be one of \('ratings', 'movies'\)"):
        ml.load(table="users")
    with pytest.raises(ValueError, match=r"order must be one of \('tfds', 'file'\)"):
        ml.load(order="random")
    with pytest.raises(ValueError, match=r"\['seed'\] only apply to the synthetic set"):
        ml.load(ml100k, "movies", seed=1)
    with pytest.raises(ValueError, match=r"\['num_ratings'\] do not apply to the synthetic"):
        ml.load(table="movies", num_ratings=10)
    with pytest.raises(TypeError, match="name_or_path must be 'synthetic' or a directory"):
        ml.load(3)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("filename", "old", "new", "match"),
    [
        ("u.data", "3\t5\t4\t880000000", "3\t5\t4", r"u.data, line 6: expected 4 fields"),
        ("u.data", "3\t5\t4\t880000000", "3\t9\t4\t880000000", "line 6: movie_id '9' is not"),
        ("u.data", "3\t5\t4\t880000000", "7\t5\t4\t880000000", "line 6: user_id '7' is not"),
        ("u.data", "3\t5\t4\t880000000", "3\t5\tfour\t880000000", "line 6: rating 'four'"),
        ("u.user", "other", "astronaut", "u.user, line 2: unknown occupation 'astronaut'"),
        ("u.user", "53|F", "old|F", "line 2: age 'old' is not an integer"),
        ("u.user", "|94043", "", r"u.user, line 2: expected 5 fields separated by '\|'"),
        ("u.item", "|http://x|0|1|1|", "|http://x|0|0|0|1|1|", r"u.item, line 2: expected 'id\|"),
    ],
)
def test_100k_malformed_files(
    tmp_path: Path, filename: str, old: str, new: str, match: str
) -> None:
    files = dict(ML_100K)
    files[filename] = files[filename].replace(old, new)
    with pytest.raises(ValueError, match=match):
        ml.load(write_movielens(tmp_path, "ml-100k", files))


@pytest.mark.parametrize(
    ("name", "files", "filename", "old", "new", "match"),
    [
        (
            "ml-1m",
            ML_1M,
            "movies.dat",
            "Adventure|Sci-Fi",
            "Space",
            "line 3: unknown genre 'Space'",
        ),
        ("ml-1m", ML_1M, "users.dat", "::16::", "::21::", "line 2: occupation code '21' is not"),
        ("ml-1m", ML_1M, "ratings.dat", "3::2::4::", "3::2::4::x::", "line 3: expected 4 fields"),
        ("ml-latest-small", ML_LATEST, "ratings.csv", "rating,", "stars,", r"lacks column\(s\)"),
    ],
)
def test_other_malformed_files(
    tmp_path: Path, name: str, files: dict, filename: str, old: str, new: str, match: str
) -> None:
    files = dict(files)
    files[filename] = files[filename].replace(old, new)
    with pytest.raises(ValueError, match=match):
        ml.load(write_movielens(tmp_path, name, files))


def test_import_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from torchrs.data import movielens, tf_movielens; movielens.load(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------
# tf.data shuffle and the tutorials' split
# --------------------------------------------------------------------------------------
def test_philox_known_answer() -> None:
    # Random123's published Philox4x32-10 known-answer vector for a zero key and counter.
    assert ml.philox4x32(0, 0, 1).tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


def test_shuffle_permutation_properties() -> None:
    for n, buffer in ((0, None), (1, None), (1000, None), (1000, 64)):
        perm = ml.shuffle_permutation(n, seed=3, buffer_size=buffer)
        assert sorted(perm.tolist()) == list(range(n))
    # A buffer of one element can only emit elements in input order.
    np.testing.assert_array_equal(ml.shuffle_permutation(50, buffer_size=1), np.arange(50))
    assert ml.tf_shuffle_seeds(0, global_seed=0) == (0, 2**31 - 1)  # TF never uses (0, 0)
    assert ml.tf_shuffle_seeds(-5, global_seed=2**31) == ((2**31) % (2**31 - 1), (-5) % (2**31 - 1))
    with pytest.raises(TypeError, match=r"seed must be an int.*not reproducible"):
        ml.shuffle_permutation(5, seed=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"buffer_size must be a positive integer \(got 0\)"):
        ml.shuffle_permutation(5, buffer_size=0)


def test_shuffle_split(synthetic: ml.Ratings) -> None:
    train_idx, test_idx = ml.shuffle_split_indices(len(synthetic))
    assert len(train_idx) == 80_000 and len(test_idx) == 20_000
    assert len(np.union1d(train_idx, test_idx)) == 100_000
    order = ml.shuffle_permutation(100_000, seed=42, buffer_size=100_000, global_seed=42)
    np.testing.assert_array_equal(np.concatenate([train_idx, test_idx]), order)
    train, test = ml.shuffle_split(synthetic)
    np.testing.assert_array_equal(test["user_id"], synthetic["user_id"][test_idx])
    np.testing.assert_array_equal(train["user_id"], synthetic["user_id"][train_idx])
    short_train, short_test = ml.shuffle_split_indices(10, train=8, test=5)  # take() truncates
    assert len(short_train) == 8 and len(short_test) == 2
    with pytest.raises(ValueError, match=r"test must be a non-negative integer \(got -1\)"):
        ml.shuffle_split_indices(10, test=-1)
    with pytest.raises(TypeError, match="ratings must be a Ratings table"):
        ml.shuffle_split({"user_id": []})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Torch side
# --------------------------------------------------------------------------------------
def test_batches(synthetic: ml.Ratings) -> None:
    table = synthetic.take(np.arange(1000))
    out = list(ml.batches(table, 300))
    assert [len(b["user_id"]) for b in out] == [300, 300, 300, 100]
    first = out[0]
    assert first["user_rating"].dtype == torch.float32
    assert first["timestamp"].dtype == torch.int64
    assert first["user_gender"].dtype == torch.bool
    assert first["user_occupation_label"].dtype == torch.int64
    assert first["user_id"].dtype == object and isinstance(first["user_id"][0], str)
    assert first["movie_genres"][0].dtype == np.int64
    np.testing.assert_array_equal(
        torch.cat([b["user_rating"] for b in out]).numpy(), table["user_rating"]
    )
    assert len(list(ml.batches(table, 300, drop_last=True))) == 3
    shuffled = next(ml.batches(table, 1000, columns=["user_id"], shuffle=True, seed=9))
    order = ml.shuffle_permutation(1000, seed=9)  # = shuffle(1000, seed=9) in tf.data
    np.testing.assert_array_equal(shuffled["user_id"], table["user_id"][order])
    assert list(shuffled) == ["user_id"]
    with pytest.raises(ValueError, match=r"batch_size must be positive \(got 0\)"):
        next(ml.batches(table, 0))
    with pytest.raises(KeyError, match=r"Unknown column\(s\) \['rating'\]"):
        next(ml.batches(table, 2, columns=["rating"]))
    with pytest.raises(TypeError, match="columns must be a sequence of names"):
        next(ml.batches(table, 2, columns="user_id"))


def test_dataset_and_dataloader(synthetic: ml.Ratings) -> None:
    table = synthetic.take(np.arange(50))
    columns = ["user_id", "user_rating", "movie_genres"]
    dataset = ml.MovieLensDataset(table, columns=columns)
    assert len(dataset) == 50
    row = dataset[3]
    assert row["user_id"] == table["user_id"][3]
    assert row["user_rating"].dtype == torch.float32 and row["user_rating"].ndim == 0
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, collate_fn=ml.collate)
    got = list(loader)
    expected = list(ml.batches(table, 16, columns=columns))
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a["user_rating"], b["user_rating"], rtol=0, atol=0)
        np.testing.assert_array_equal(a["user_id"], b["user_id"])
    # Given single rows (a sampler without batching, or a dataset without __getitems__),
    # collate stacks them itself.
    stacked = ml.collate([dataset[0], dataset[1], dataset[2]])
    torch.testing.assert_close(stacked["user_rating"], torch.tensor(table["user_rating"][:3]))
    assert stacked["user_id"].tolist() == table["user_id"][:3].tolist()
    with pytest.raises(ValueError, match="collate got an empty batch"):
        ml.collate([])


# --------------------------------------------------------------------------------------
# TensorFlow side (exact comparisons: ids, strings and parsed numbers have no rounding)
# --------------------------------------------------------------------------------------
@pytest.fixture()
def prepare_tfds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tf):
    """Runs the real tfds movielens builder on fake files (download redirected to them)."""
    try:
        import importlib_resources  # noqa: F401
    except ImportError:  # tfds 4.9 imports it while preparing; the stdlib module does the job
        monkeypatch.setitem(sys.modules, "importlib_resources", importlib.resources)
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import download_manager

    tfds.disable_progress_bar()

    def prepare(raw_parent: Path, config: str, num_shards: int | None = None) -> Path:
        monkeypatch.setattr(
            download_manager.DownloadManager,
            "download_and_extract",
            lambda self, url: str(raw_parent),
        )
        builder = tfds.builder(
            f"movielens/{config}", data_dir=str(tmp_path / f"tfds-{config}-{num_shards}")
        )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(num_shards=num_shards)
        )
        return Path(builder.data_dir)

    return prepare


@pytest.mark.tf
@pytest.mark.parametrize(
    ("name", "files", "config"),
    [
        ("ml-100k", ML_100K, "100k"),
        ("ml-1m", ML_1M, "1m"),
        ("ml-latest-small", ML_LATEST, "latest-small"),
    ],
)
def test_readers_match_tfds(
    tmp_path: Path, prepare_tfds, name: str, files: dict, config: str
) -> None:
    raw = write_movielens(tmp_path / "raw", name, files)
    for table in ("ratings", "movies"):
        prepared = prepare_tfds(raw.parent, f"{config}-{table}")
        ours = ml.load(raw, table)  # raw files, tfds order
        theirs = tfml.read_tfds_directory(prepared, table)
        assert_tables_equal(ours, theirs)
        assert_tables_equal(ml.load(prepared, table), theirs)  # load() detects tfds dirs
        info = (prepared / "dataset_info.json").read_text()
        total = int(ml.tfds_example_sizes(ours).sum())
        assert f'"numBytes": "{total}"' in info  # our serialized sizes are tfds's


@pytest.mark.tf
def test_tfds_order_with_several_shards(tmp_path: Path, prepare_tfds) -> None:
    # 150 made-up ratings written by tfds into 3 shards, read back interleaved.
    lines = [f"{1 + i % 3}\t{1 + i % 5}\t{1 + i % 5}\t{880000000 + i}" for i in range(150)]
    files = {**ML_100K, "u.data": "\n".join(lines) + "\n"}
    raw = write_movielens(tmp_path / "raw", "ml-100k", files)
    theirs = tfml.read_tfds_directory(prepare_tfds(raw.parent, "100k-ratings", num_shards=3))
    ours = ml.load(raw, order="file").take(ml.tfds_order(150, num_shards=3))
    assert_tables_equal(ours, theirs)


@pytest.mark.tf
def test_tfds_directory_table_mismatch(tmp_path: Path, prepare_tfds) -> None:
    raw = write_movielens(tmp_path / "raw", "ml-100k", ML_100K)
    prepared = prepare_tfds(raw.parent, "100k-movies")
    with pytest.raises(ValueError, match="holds movielens/100k-movies, not a ratings table"):
        ml.load(prepared)
    with pytest.raises(ValueError, match="order='file' is unknown for a tfds-prepared"):
        ml.load(prepared, "movies", order="file")


@pytest.mark.tf
def test_shuffle_permutation_matches_tf(tf) -> None:
    # Exact (tolerance 0): both sides produce integer permutations.
    rng = np.random.default_rng(0)
    for _ in range(12):
        n = int(rng.integers(0, 3000))
        seed = int(rng.integers(-(2**40), 2**40))
        buffer = None if rng.random() < 0.5 else int(rng.integers(1, 4000))
        global_seed = None if rng.random() < 0.5 else int(rng.integers(0, 2**40))
        np.testing.assert_array_equal(
            ml.shuffle_permutation(n, seed, buffer, global_seed),
            tfml.tf_shuffle_permutation(n, seed, buffer, global_seed),
            err_msg=f"n={n} seed={seed} buffer={buffer} global_seed={global_seed}",
        )


@pytest.mark.tf
def test_tutorial_split_matches_tf(tf, synthetic: ml.Ratings) -> None:
    # The tutorial code, verbatim, in eager mode (the global seed is restored afterwards).
    from tensorflow.python.eager import context

    previous = context.global_seed()
    ds = tfml.to_tf_dataset(synthetic, ["user_id", "movie_title"])
    try:
        tf.random.set_seed(42)
        shuffled = ds.shuffle(100_000, seed=42, reshuffle_each_iteration=False)
        tf_train = shuffled.take(80_000)
        tf_test = shuffled.skip(80_000).take(20_000)
        got = [
            np.concatenate([b["movie_title"].numpy() for b in part.batch(20_000)])
            for part in (tf_train, tf_test)
        ]
    finally:
        tf.random.set_seed(previous)
    train, test = ml.shuffle_split(synthetic)
    for tf_titles, ours in zip(got, (train, test), strict=True):
        assert [t.decode() for t in tf_titles] == ours["movie_title"].tolist()


@pytest.mark.tf
def test_to_tf_dataset_matches_tfds_spec_and_torch(
    tmp_path: Path, prepare_tfds, tf, synthetic: ml.Ratings
) -> None:
    import tensorflow_datasets as tfds

    raw = write_movielens(tmp_path / "raw", "ml-100k", ML_100K)
    for table, kind in (("ratings", ml.Ratings), ("movies", ml.Movies)):
        prepared = prepare_tfds(raw.parent, f"100k-{table}")
        reference = tfds.builder_from_directory(str(prepared)).as_dataset(split="train")
        ours = tfml.to_tf_dataset(ml.load(raw, table))
        assert ours.element_spec == reference.element_spec
        assert_tables_equal(tfml.from_tf_dataset(ours, kind), ml.load(raw, table))
    # Same values and dtypes as the torch batches, on the synthetic set.
    sample = synthetic.take(np.arange(700))
    tf_batches = list(tfml.to_tf_dataset(sample).map(lambda x: {
        k: v for k, v in x.items() if k != "movie_genres"}).batch(256))  # fmt: skip
    torch_batches = list(ml.batches(sample, 256))
    assert len(tf_batches) == len(torch_batches) == 3
    for tf_batch, torch_batch in zip(tf_batches, torch_batches, strict=True):
        for name, tf_values in tf_batch.items():
            ours = torch_batch[name]
            if tf_values.dtype == tf.string:
                assert [v.decode() for v in tf_values.numpy()] == ours.tolist()
            else:
                assert tf_values.dtype.as_numpy_dtype == ours.numpy().dtype, name
                np.testing.assert_array_equal(tf_values.numpy(), ours.numpy())


@pytest.mark.tf
def test_tfrs_basic_retrieval_runs_on_it(tf, tfrs) -> None:
    # The TFRS basic-retrieval tutorial's input code, unchanged, on a small synthetic set.
    ratings = tfml.to_tf_dataset(
        ml.load(num_users=30, num_movies=40, num_ratings=900), ["user_id", "movie_title"]
    )
    movies = tfml.to_tf_dataset(ml.load(table="movies", num_movies=40)).map(
        lambda x: x["movie_title"]
    )
    user_ids = tf.keras.layers.StringLookup(mask_token=None)
    user_ids.adapt(ratings.map(lambda x: x["user_id"]))
    titles = tf.keras.layers.StringLookup(mask_token=None)
    titles.adapt(movies)
    assert user_ids.vocabulary_size() == 31 and titles.vocabulary_size() == 41  # + [UNK]
    user_model = tf.keras.Sequential([user_ids, tf.keras.layers.Embedding(31, 8)])
    movie_model = tf.keras.Sequential([titles, tf.keras.layers.Embedding(41, 8)])
    task = tfrs.tasks.Retrieval(
        metrics=tfrs.metrics.FactorizedTopK(movies.batch(16).map(movie_model))
    )
    batch = next(iter(ratings.batch(128)))
    loss = task(user_model(batch["user_id"]), movie_model(batch["movie_title"]))
    assert np.isfinite(loss.numpy()) and loss.numpy() > 0
