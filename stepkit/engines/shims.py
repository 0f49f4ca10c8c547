"""Make Athena (Trino) functions behave as Athena's on DuckDB, by rewriting the sqlglot tree.

sqlglot already maps most functions (lower, coalesce, concat -> `||` which keeps Trino's NULL
propagation, bitwise_and -> `&`). What it maps to a DuckDB function with different results is
rewritten here:

- `try(json_parse(x))`: DuckDB's json() re-serialises the document; Athena only needs "NULL when
  malformed", so it becomes `CASE WHEN json_valid(x) THEN x END` (one validating parse).
- `json_extract_scalar(x, path)`: DuckDB raises on malformed JSON and returns the text of objects
  and arrays; Athena returns NULL for both. DuckDB also parses the document once per call, so the
  calls of one SELECT over the same document become ONE `json_extract(x, [paths])` (a list), and
  each value is read from the list (list-path extraction is about twice as fast; with
  22 paths it is ~6x here).
- `try_cast(x AS integer)`: DuckDB rounds '4.7' to 5; Trino parses with Integer.parseInt and
  gives NULL. `try_cast(x AS boolean)`: DuckDB also accepts 'yes'/'y'; Trino only t/f/1/0/true/false.
- `from_big_endian_64(xxhash64(to_utf8(x)))`: DuckDB has no xxhash64. Its `hash()` is a good
  64-bit hash, deterministic for a given DuckDB version (no per-process seed), so a local run
  picks the same sample and batches every run. It does not equal Athena's values bit for bit.
- `bitwise_and(a, b)` becomes `(a & b)`: unparenthesised, `% n` after it would bind to `b`.
- Integer division: the connection runs with `SET integer_division = true`, which gives Trino's
  `integer / integer` truncation; `%` already truncates toward zero in both.
"""
from __future__ import annotations

from sqlglot import exp

from stepkit.engines.dedup import rewrite_min_dedup

JSON_SCALAR = "__sk_json_scalar"
LIST_PREFIX = "__sk_json_"
INT_TYPES = {exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT, exp.DataType.Type.BIGINT}
# Java's Integer.parseInt / Long.parseLong: optional sign, ASCII digits, no blanks.
INT_PATTERN = "[+-]?[0-9]+"

# DuckDB macros the rewritten SQL calls; created once per connection.
MACROS = [
    # The value of one json_extract() list element as Athena's json_extract_scalar returns it:
    # strings unquoted, numbers and booleans as text, NULL for null, objects, arrays and absent paths.
    f"""CREATE OR REPLACE MACRO {JSON_SCALAR}(v) AS
      CASE WHEN v IS NULL THEN NULL
           WHEN left(CAST(v AS VARCHAR), 1) = '"' THEN json_extract_string(v, '$')
           WHEN left(CAST(v AS VARCHAR), 1) IN ('{{', '[') OR CAST(v AS VARCHAR) = 'null' THEN NULL
           ELSE CAST(v AS VARCHAR) END""",
]


_TYPES = {t: exp.DataType.build(t) for t in ("VARCHAR", "HUGEINT", "BIGINT")}


def _type(name: str) -> exp.DataType:
    return _TYPES[name].copy()


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    """A DuckDB function call, kept as written (sqlglot must not map it to another dialect's)."""
    return exp.Anonymous(this=name, expressions=list(args))


def rewrite(tree: exp.Expression) -> exp.Expression:
    """A copy of an Athena query tree that DuckDB runs with Athena's results."""
    tree = tree.copy()
    rewrite_min_dedup(tree)  # a plan change only: same rows (see dedup.py)
    json_columns = _json_columns(tree)
    for select in list(tree.find_all(exp.Select)):
        _batch_json_extracts(select, json_columns)
    # One copy up front; the transforms then edit it in place (sqlglot would copy per pass).
    return tree.transform(_function, copy=False).transform(_bitwise, copy=False)


def _json_columns(tree: exp.Expression) -> set[str]:
    """Names given to `[try(]json_parse(...)[)]` anywhere in the statement: valid JSON or NULL, so
    extracting from them needs no second validation. (A name reused for a varchar elsewhere in the
    same statement would make DuckDB raise, never return a wrong value.)"""
    names = set()
    for alias in tree.find_all(exp.Alias):
        inner = alias.this.this if isinstance(alias.this, exp.Try) else alias.this
        if isinstance(inner, exp.ParseJSON):
            names.add(alias.alias)
    return names


def _is_json_column(node: exp.Expression, json_columns: set[str]) -> bool:
    return isinstance(node, exp.Column) and node.name in json_columns


def _valid_or_null(doc: exp.Expression, json_columns: set[str]) -> exp.Expression:
    if _is_json_column(doc, json_columns):
        return doc.copy()
    return exp.Case(ifs=[exp.If(this=_fn("json_valid", doc.copy()), true=doc.copy())])


def _batch_json_extracts(select: exp.Select, json_columns: set[str]) -> None:
    """Replace this SELECT's json_extract_scalar calls by reads of one list per document."""
    calls = [
        c for c in select.find_all(exp.JSONExtractScalar)
        if c.find_ancestor(exp.Select) is select and isinstance(c.expression, (exp.JSONPath, exp.Literal))
    ]
    if not calls:
        return
    keys = [(c.this.sql("duckdb"), c.expression.sql("duckdb")) for c in calls]  # (document, quoted path)
    groups: dict[str, tuple[exp.Expression, list[str]]] = {}
    for c, (key, path) in zip(calls, keys):
        doc, paths = groups.setdefault(key, (c.this, []))
        if path not in paths:
            paths.append(path)
    from_ = select.args.get("from_")
    # Wrapping the FROM source keeps one extraction per row explicit; with joins or `*` the
    # extra columns would leak or be ambiguous, so those keep the list call inline (DuckDB's
    # common-subexpression elimination then evaluates it once).
    wrap = (
        from_ is not None and not select.args.get("joins") and not select.args.get("laterals")
        and not any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star) for e in select.expressions)
    )
    lists: dict[str, exp.Expression] = {}
    extra = []
    for i, (key, (doc, paths)) in enumerate(groups.items()):
        call = _fn(
            "json_extract", _valid_or_null(doc, json_columns),
            exp.Array(expressions=[exp.Literal.string(p[1:-1].replace("''", "'")) for p in paths]),
        )
        if wrap:
            name = f"{LIST_PREFIX}{i}"
            extra.append(exp.alias_(call, name))
            lists[key] = exp.column(name)
        else:
            lists[key] = call
    for c, (key, path) in zip(calls, keys):
        index = groups[key][1].index(path) + 1
        element = exp.Anonymous(this="list_extract", expressions=[lists[key].copy(), exp.Literal.number(index)])
        c.replace(exp.Anonymous(this=JSON_SCALAR, expressions=[element]))
    if wrap:
        source = from_.this
        alias = source.alias_or_name
        inner = exp.select(exp.Star(), *extra).from_(source.copy())
        select.set("from_", exp.From(this=inner.subquery(alias)))


def _stringy(node: exp.Expression) -> bool:
    """Known at compile time to be a string (so a text-to-number rule applies)."""
    return (
        (isinstance(node, exp.Anonymous) and node.name == JSON_SCALAR)
        or (isinstance(node, exp.Literal) and node.is_string)
        or isinstance(node, (exp.Lower, exp.Upper, exp.Trim, exp.Concat, exp.DPipe))
    )


def _when_text(x: exp.Expression, text_rule: exp.Expression, other: exp.Expression) -> exp.Expression:
    """`text_rule` when x is a string, else `other` (x's type is only known to DuckDB)."""
    if _stringy(x):
        return text_rule
    is_text = exp.In(this=_fn("typeof", x.copy()), expressions=[exp.Literal.string("VARCHAR"), exp.Literal.string("JSON")])
    return exp.Case(ifs=[exp.If(this=is_text, true=text_rule)], default=other)


BITWISE = (exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseLeftShift, exp.BitwiseRightShift)


def _bitwise(node: exp.Expression) -> exp.Expression:
    if isinstance(node, BITWISE) and not isinstance(node.parent, exp.Paren):
        # sqlglot renders bitwise_and(a, b) % n as `a & b % n`; DuckDB binds % first. Keep the call's grouping.
        return exp.Paren(this=node.copy())
    return node


def _function(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Try) and isinstance(node.this, exp.ParseJSON):
        doc = node.this.this
        return exp.Case(ifs=[exp.If(this=_fn("json_valid", doc.copy()), true=doc.copy())])
    if isinstance(node, exp.TryCast) and node.to.this in INT_TYPES:
        x = node.this
        as_text = exp.cast(x.copy(), _type("VARCHAR"), copy=False)
        plain = exp.TryCast(this=x.copy(), to=node.to.copy())
        parsed = exp.Case(
            ifs=[exp.If(this=_fn("regexp_full_match", as_text, exp.Literal.string(INT_PATTERN)), true=plain.copy())]
        )
        return _when_text(x, parsed, plain)
    if isinstance(node, exp.TryCast) and node.to.this == exp.DataType.Type.BOOLEAN:
        x = node.this
        low = exp.Lower(this=exp.cast(x.copy(), _type("VARCHAR"), copy=False))
        words = exp.Case(ifs=[
            exp.If(this=exp.In(this=low.copy(), expressions=[exp.Literal.string(s) for s in ("true", "t", "1")]),
                   true=exp.true()),
            exp.If(this=exp.In(this=low.copy(), expressions=[exp.Literal.string(s) for s in ("false", "f", "0")]),
                   true=exp.false()),
        ])
        return _when_text(x, words, exp.TryCast(this=x.copy(), to=node.to.copy()))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "from_big_endian_64":
        return _hash64(node) or node
    return node


def _hash64(node: exp.Anonymous) -> exp.Expression | None:
    """from_big_endian_64(xxhash64(to_utf8(x))) -> a signed 64-bit hash of x (NULL for NULL)."""
    (arg,) = node.expressions or [None]
    if not (isinstance(arg, exp.Anonymous) and arg.name.lower() == "xxhash64" and len(arg.expressions) == 1):
        return None
    inner = arg.expressions[0]
    if not isinstance(inner, exp.Encode):
        return None
    x = inner.this
    # hash() is unsigned; shifting by 2^63 maps it one-to-one onto the signed range.
    signed = exp.cast(
        exp.Sub(this=exp.cast(_fn("hash", x.copy()), _type("HUGEINT"), copy=False),
                expression=exp.Literal.number(2**63)),
        _type("BIGINT"), copy=False,
    )
    return exp.Case(ifs=[exp.If(this=exp.Is(this=x.copy(), expression=exp.null()), true=exp.null())], default=signed)
