"""Feature presets and the columnar DictVectorizer: identical to the classic per-row path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction import DictVectorizer

from scoring.errors import UnknownRecipe
from scoring.model.declaration import preset
from scoring.model.features import build_features, records_for_vectorizer
from scoring.model.vectorize import transform_columns


def test_pu_do_matches_the_tutorial_string_concatenation(rides):
    features = build_features(preset("ride_pu_do"), rides)
    tutorial = rides["PULocationID"].astype(str) + "_" + rides["DOLocationID"].astype(str)
    assert features["PU_DO"].astype(str).tolist() == tutorial.tolist()
    assert features["trip_distance"].tolist() == rides["trip_distance"].tolist()


def test_categorical_recipe_keeps_locations_as_strings(rides):
    features = build_features(preset("ride_categorical"), rides)
    assert features["PULocationID"].astype(str).tolist() == rides["PULocationID"].astype(str).tolist()
    assert list(features.columns) == ["PULocationID", "DOLocationID", "trip_distance"]


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UnknownRecipe, match="ride_categorical, ride_pu_do"):
        preset("nope")


@pytest.mark.parametrize("recipe", ["ride_pu_do", "ride_categorical"])
def test_fast_path_equals_dv_transform_on_real_recipes(recipe, rides):
    features = build_features(preset(recipe), rides)
    dv = DictVectorizer().fit(records_for_vectorizer(features.iloc[: len(features) // 2]))  # half: unknowns later
    fast = transform_columns(dv, features)
    naive = dv.transform(records_for_vectorizer(features))
    assert fast.shape == naive.shape
    assert (fast != naive).nnz == 0


categories = st.text(alphabet="abcxyz_019=", min_size=0, max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n_cat=st.integers(min_value=0, max_value=3),
    n_num=st.integers(min_value=0, max_value=2),
    separator=st.sampled_from(["=", "|"]),
)
def test_fast_path_equals_dv_transform_on_random_vocabularies(data, n_cat, n_num, separator):
    # Given a DictVectorizer fitted on random records (some columns possibly never seen)
    names = [f"c{i}" for i in range(n_cat)] + [f"n{i}" for i in range(n_num)]
    if not names:
        names = ["n0"]
        n_num = 1

    def column_values(name, size):
        if name.startswith("c"):
            return data.draw(st.lists(categories, min_size=size, max_size=size))
        return data.draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=size, max_size=size))

    fit_rows = data.draw(st.integers(1, 12))
    fit_frame = pd.DataFrame({n: column_values(n, fit_rows) for n in names})
    dropped = data.draw(st.sets(st.sampled_from(names)))
    dv = DictVectorizer(separator=separator).fit(
        [{k: v for k, v in r.items() if k not in dropped} for r in fit_frame.to_dict(orient="records")] or [{}]
    )
    # When a different random frame (unknown categories included) is transformed both ways
    rows = data.draw(st.integers(1, 15))  # dv.transform refuses an empty list
    frame = pd.DataFrame({n: column_values(n, rows) for n in names})
    for n in names[:n_cat]:
        frame[n] = frame[n].astype("category") if data.draw(st.booleans()) else frame[n].astype(object)
    fast = transform_columns(dv, frame)
    naive = dv.transform(records_for_vectorizer(frame))
    # Then the matrices are identical, entry for entry
    assert fast.shape == naive.shape
    assert np.array_equal(fast.toarray(), naive.toarray())


def test_predictor_fast_and_naive_paths_agree_exactly(predictor, rides):
    valid = predictor.schema.validate_frame(rides).valid
    # The classic tutorial path: per-row dicts through the bundle's own DictVectorizer
    dicts = records_for_vectorizer(build_features(predictor.declaration, valid))
    naive = predictor.bundle.model.predict(predictor.bundle.vectorizer.transform(dicts))
    assert np.array_equal(predictor.predict(valid), naive)


def test_pu_do_labels_stay_exact_for_ids_too_large_to_pack():
    frame = pd.DataFrame({"PULocationID": [2**32 + 1, 7], "DOLocationID": [5, 2**40], "trip_distance": [1.0, 2.0]})
    features = build_features(preset("ride_pu_do"), frame)
    assert features["PU_DO"].astype(str).tolist() == [f"{2**32 + 1}_5", f"7_{2**40}"]


def test_nans_of_any_sign_and_payload_are_one_null_in_a_categorical_of_a_number():
    import struct

    from scoring.model.declaration import Declaration, FeatureSpec
    from scoring.model.features import build_features
    from scoring.model.schema import FieldSpec

    # Given an optional number feeding a categorical, null in two rows as NaNs of different bits
    negative_nan = struct.unpack("d", struct.pack("Q", 0xFFF8000000000001))[0]
    declaration = Declaration(
        inputs=(FieldSpec("v", "number", required=False),), features=(FeatureSpec("v", "categorical", ("v",)),)
    )
    # When the features are built, Then both rows have no value (two "nan" categories made pandas refuse it)
    features = build_features(declaration, pd.DataFrame({"v": [1.5, float("nan"), negative_nan]}))
    assert features["v"].isna().tolist() == [False, True, True]
    assert features["v"].cat.categories.is_unique and features["v"].tolist()[0] == "1.5"
