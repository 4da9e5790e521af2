"""A columnar DictVectorizer.transform: the sparse matrix straight from `vocabulary_`.

The classic path turns every row into a dict and lets DictVectorizer walk them one by one; on a
million rows that costs seconds. Here each categorical column maps its distinct values onto the
vocabulary once, and the CSR arrays are assembled with numpy. The result equals
`dv.transform(records)`: a string value becomes the feature "name<sep>value" with value 1, a
number becomes the feature "name" with its value, and names the vocabulary does not know are
dropped, exactly as DictVectorizer drops them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import DictVectorizer


def transform_columns(dv: DictVectorizer, features: pd.DataFrame) -> sp.csr_matrix:
    """Equivalent of dv.transform(features.to_dict(orient="records")), built column by column."""
    n_rows = len(features)
    vocabulary: dict[str, int] = dv.vocabulary_
    column_indices = np.empty((n_rows, features.shape[1]), dtype=np.int64)
    column_values = np.empty((n_rows, features.shape[1]), dtype=dv.dtype)
    for position, (name, column) in enumerate(features.items()):
        indices, values = _encode_column(str(name), column, vocabulary, dv.separator, dv.dtype)
        column_indices[:, position] = indices
        column_values[:, position] = values
    # DictVectorizer lists each row's features in vocabulary order; a sum over a row (a linear model's dot
    # product) depends on that order in its last bit, so the columns are put in the same order here.
    if features.shape[1] > 1 and (np.diff(column_indices, axis=1) < 0).any():
        order = np.argsort(column_indices, axis=1, kind="stable")
        column_indices = np.take_along_axis(column_indices, order, axis=1)
        column_values = np.take_along_axis(column_values, order, axis=1)
    present = column_indices >= 0
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(present.sum(axis=1), out=indptr[1:])
    matrix = sp.csr_matrix(
        (column_values[present], column_indices[present], indptr),
        shape=(n_rows, len(vocabulary)),
        dtype=dv.dtype,
    )
    matrix.has_sorted_indices = True
    return matrix


def _encode_column(
    name: str, column: pd.Series, vocabulary: dict[str, int], separator: str, dtype
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the vocabulary index (-1 when unknown) and the value this column contributes."""
    if isinstance(column.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(column.dtype):
        categorical = column.astype("category") if not isinstance(column.dtype, pd.CategoricalDtype) else column
        codes = categorical.cat.codes.to_numpy()
        lookup = np.array(
            [vocabulary.get(f"{name}{separator}{category}", -1) for category in categorical.cat.categories.tolist()],
            dtype=np.int64,
        )
        # Code -1 is a missing value: DictVectorizer has no feature for it either.
        indices = np.where(codes >= 0, lookup[codes] if lookup.size else -1, -1)
        return indices, np.ones(len(column), dtype=dtype)
    index = vocabulary.get(name, -1)
    return np.full(len(column), index, dtype=np.int64), column.to_numpy(dtype=dtype, na_value=np.nan)
