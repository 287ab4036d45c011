"""Which other warehouses' series a warehouse's LightGBM pools into its training rows.

A warehouse's model is trained and gated alone (one ``trained_models`` partition), but its LightGBM can
learn from more series than its own: a warehouse with fewer than ``TrainConfig.pool_series`` series routed
to the LightGBM borrows the difference from the other warehouses, whose training pairs join its own
(:class:`demand_platform.models.global_lgbm.DonorRows`). A full-size warehouse (10,000 SKUs) has more than
enough and borrows nothing, so the full-size training costs what it did; the small ones gain most
(BENCHMARKS.md, "One LightGBM across warehouses").

The series are chosen by stable hashes, warehouse by warehouse: the donor warehouses in the order of a
hash of ``(warehouse, donor warehouse)`` (so each warehouse has its own order of donors), and within a
donor its series in the order of a hash of ``(sku, donor warehouse)``; the first ``n``. The same on every
run and machine, without a seed to keep; few donor warehouses (each costs a panel, tiers and a feature
build, so 1,000 series of one full-size donor cost one of them, not 49); and a choice among fewer
candidates keeps every series it chose from more (the store loads the chosen series only, and the
training's own choice among them picks the same ones).
"""

import pandas as pd

from demand_platform import columns as C

#: Key of the series hash (pandas' ``hash_pandas_object``; 16 characters).
DONOR_HASH_KEY = "demand-donors-01"
#: Borrowed rows end this many days before the training date. The warehouses' runs of a day go in any order
#: (at once on a cluster), so another warehouse's day D may or may not be in when a warehouse trains at D;
#: its day D - 1 is (yesterday's runs), so the model is the same whatever the order.
POOL_LAG_DAYS = 1


def choose_donor_series(series: pd.DataFrame, n: int, warehouse_id: object) -> pd.DataFrame:
    """The first ``n`` series of ``series`` (``sku``, ``warehouse_id``) in the pool order of ``warehouse_id``.

    Args:
        series: Candidate series of other warehouses, one row each (duplicates count once).
        n: How many to keep (0: none).
        warehouse_id: The warehouse whose model pools them.

    Returns:
        The chosen ``sku``, ``warehouse_id`` rows (as given), in pool order.
    """
    keys = series.loc[:, [C.SKU, C.WAREHOUSE_ID]].drop_duplicates().reset_index(drop=True)
    if n <= 0 or keys.empty:
        return keys.iloc[:0]
    text = keys.astype(str)
    donor = pd.util.hash_pandas_object(
        str(warehouse_id) + "|" + text[C.WAREHOUSE_ID], index=False, hash_key=DONOR_HASH_KEY
    )
    within = pd.util.hash_pandas_object(text, index=False, hash_key=DONOR_HASH_KEY)
    order = pd.DataFrame({"donor": donor.to_numpy(), "within": within.to_numpy()}).sort_values(
        ["donor", "within"], kind="stable"
    )
    return keys.loc[order.index[:n]].reset_index(drop=True)


def pool_size(n_own_series: int, pool_series: int) -> int:
    """Series a warehouse whose LightGBM has ``n_own_series`` of its own borrows to reach ``pool_series``."""
    return max(0, pool_series - n_own_series)


def donor_history(
    history: pd.DataFrame, warehouse_id: object, train_date: pd.Timestamp, n: int
) -> pd.DataFrame:
    """The rows of ``history`` of other warehouses than ``warehouse_id``, dated on or before ``POOL_LAG_DAYS``
    before ``train_date``, of the ``n`` series :func:`choose_donor_series` picks among them (empty when ``n``
    is 0)."""
    if n <= 0 or C.WAREHOUSE_ID not in history.columns:
        return history.iloc[:0]
    end = pd.Timestamp(train_date) - pd.Timedelta(days=POOL_LAG_DAYS)
    dates = pd.to_datetime(history[C.DATE])
    others = history.loc[(history[C.WAREHOUSE_ID].astype(str) != str(warehouse_id)) & (dates <= end)]
    if others.empty:
        return others
    chosen = choose_donor_series(others, n, warehouse_id)
    index = pd.MultiIndex.from_frame(chosen.astype(str))
    rows = pd.MultiIndex.from_arrays(
        [others[C.SKU].astype(str).to_numpy(), others[C.WAREHOUSE_ID].astype(str).to_numpy()]
    )
    return others.loc[rows.isin(index)]
