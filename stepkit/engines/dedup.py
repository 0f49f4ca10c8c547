"""A faster plan for "one row per key": `SELECT k, min(x) AS x FROM t WHERE k IS NOT NULL ... GROUP BY k`
(or, to prefer some copies, `coalesce(min(x) FILTER (WHERE c), min(x)) AS x`).

DuckDB's hash aggregate holds every group's current minimum, so deduplicating raw documents
keeps every document in memory at once (6 GB at 10M rows of ~600 bytes); under the local
run's memory cap it spills all of them to disk and back. Almost every key is unique, and for
a key seen once min(x) is x itself. So the query becomes

    SELECT k, x FROM t WHERE ... ANTI JOIN (keys seen more than once)        -- streamed, nothing held
    UNION ALL
    SELECT k, min(x) FROM t WHERE ... SEMI JOIN (keys seen more than once) GROUP BY k

The first pass to find repeated keys holds only keys. Same rows, same values (min of one value
is the value; min ignores NULLs either way). The preferring form is the value too for a key seen
once: its filtered min is x or NULL, and the unfiltered min after it is x. So only keys seen more
than once evaluate `c` (StagingFeatures: whether a copy parses as JSON). At 1M rows it was 1.7x faster with no memory cap
and 3-5x faster under a cap that makes the original spill (benchmarks/engine_staging.py).
When the SELECT is a CTE of the statement's own WITH, the repeated keys become a MATERIALIZED
CTE beside it, found once for both joins (10% less CPU for StagingFeatures at 1M rows);
elsewhere each join gets its own copy of the subquery.

Only the exact shape is rewritten: one table, one grouping column that the WHERE requires to be
NOT NULL (NULL keys would match neither join), every other output an aliased min() of a column
or the coalesce above (filters without aggregates, windows or subqueries, the last min
unfiltered, every min of the same column), and nothing else (no HAVING, joins, DISTINCT,
windows, ORDER BY or LIMIT).
"""
from __future__ import annotations

from sqlglot import exp

DUPS = "__sk_dups"
KEY = "__sk_key"


def rewrite_min_dedup(tree: exp.Expression) -> None:
    """Rewrite, in place, every SELECT of the shape above that sits in a CTE or subquery."""
    for select in list(tree.find_all(exp.Select)):
        if isinstance(select.parent, (exp.CTE, exp.Subquery)) and _shape(select):
            select.replace(_split(select, _shared(tree, select)))


def _shared(tree: exp.Expression, select: exp.Select) -> str | None:
    """Give the repeated keys of a SELECT that is a CTE of `tree`'s WITH a CTE of their own, just
    before it (so it sees the same earlier CTEs); return its name, or None to inline them."""
    cte, with_ = select.parent, tree.args.get("with_")
    if not isinstance(cte, exp.CTE) or with_ is None or cte.parent is not with_ or with_.args.get("recursive"):
        return None
    taken = {c.alias_or_name for c in with_.expressions}
    name, i = DUPS, 0
    while name in taken:  # a second dedup in the statement, or a user's CTE of that name
        i += 1
        name = f"{DUPS}_{i}"
    shared = exp.CTE(this=_repeated(select), alias=exp.TableAlias(this=exp.to_identifier(name)), materialized=True)
    ctes = list(with_.expressions)
    ctes.insert(ctes.index(cte), shared)
    with_.set("expressions", ctes)
    return name


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    return _conjuncts(node.this) + _conjuncts(node.expression) if isinstance(node, exp.And) else [node]


def _shape(select: exp.Select) -> bool:
    group = select.args.get("group")
    keys = group.expressions if group else []
    if len(keys) != 1 or not isinstance(keys[0], exp.Column) or group.args.get("rollup") or group.args.get("cube"):
        return False
    key = keys[0]
    from_ = select.args.get("from_")
    if from_ is None or not isinstance(from_.this, exp.Table):
        return False
    for arg in ("joins", "laterals", "having", "distinct", "qualify", "order", "limit", "offset", "windows", "with_"):
        if select.args.get(arg):
            return False
    where = select.args.get("where")
    not_null = exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null()))
    if where is None or not any(c == not_null for c in _conjuncts(where.this)):
        return False
    mins = 0
    for e in select.expressions:
        inner = e.this if isinstance(e, exp.Alias) else e
        if inner == key:
            continue
        if isinstance(e, exp.Alias) and _one_row_value(inner) is not None:
            mins += 1
            continue
        return False
    return mins > 0


def _min_column(node: exp.Expression) -> exp.Column | None:
    """x of a plain `min(x)`."""
    if isinstance(node, exp.Min) and isinstance(node.this, exp.Column) and not node.expressions:
        return node.this
    return None


def _one_row_value(node: exp.Expression) -> exp.Column | None:
    """The column an aggregate output equals over a group of one row, for the forms the plan knows:
    `min(x)`, and `coalesce(min(x) FILTER (WHERE c), ..., min(x))` (the last one unfiltered)."""
    column = _min_column(node)
    if column is not None or not isinstance(node, exp.Coalesce):
        return column
    args = [node.this, *node.expressions]
    column = _min_column(args[-1])
    if column is None:
        return None
    for arg in args[:-1]:
        if isinstance(arg, exp.Filter):
            where = arg.expression
            if not isinstance(where, exp.Where) or where.find(exp.AggFunc, exp.Window, exp.Subquery, exp.Select):
                return None
            arg = arg.this
        if _min_column(arg) != column:
            return None
    return column


def _repeated(select: exp.Select) -> exp.Select:
    """The keys seen more than once."""
    key = select.args["group"].expressions[0]
    return (
        exp.select(exp.alias_(key.copy(), KEY))
        .from_(select.args["from_"].this.copy())
        .where(select.args["where"].this.copy())
        .group_by(key.copy())
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )


def _split(select: exp.Select, shared: str | None) -> exp.Expression:
    key = select.args["group"].expressions[0]

    def joined(kind: str) -> exp.Join:
        on = exp.EQ(this=key.copy(), expression=exp.column(KEY, table=DUPS))
        source = exp.table_(shared).as_(DUPS) if shared else _repeated(select).subquery(DUPS)
        return exp.Join(this=source, kind=kind, on=on)

    once = select.copy()
    once.set("group", None)
    for e in once.expressions:
        column = _one_row_value(e.this) if isinstance(e, exp.Alias) else None
        if column is not None:
            e.this.replace(column.copy())
    once.append("joins", joined("ANTI"))
    many = select.copy()
    many.append("joins", joined("SEMI"))
    return exp.union(once, many, distinct=False)
