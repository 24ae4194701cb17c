"""Merging stores: the runs and results of several stores (the shards of one study, run on N
machines, say) copied into one, where the merged run summarises and reports as one.

Every row is content-addressed: generations and judgments by key, a run's prompts, candidates and
items by (run, prompt id / label / item name, which holds the repeat), runs by id, votes by all
they hold. A row the target holds with the same content is left as it is, so merging twice, or
overlapping shards, changes nothing; a row under the same key with other content is a conflict,
reported (table, key, source) and never written: the target's stays. Timings, token counts and
creation times are not content (one answer made on two machines takes two times). A failed
generation or judgment never replaces a result, and a result replaces a failure (the store's own
rule). Runs of one id are one run where their configurations are equal (else a conflict, and none
of that run's rows is copied): their shards, statuses, warnings and model descriptions are joined
(``study.shard.join``). A run's items are kept in one order whoever wrote them (turn by turn, the
prompts as the run lists them, then by item name), so that figures which resample prompts in the
order they first appear come out as those of the run made whole in one process.

Sources are opened read-only and never changed; a store of an older version is read from a
migrated copy in a temporary folder. The target is created where it does not exist; each source
is merged in one transaction, holding the target's writer lock of every run it touches.

Judge cards, judge profiles and the page's comparisons come along, each known by all it holds.

Left out: what a row means (``store``), the shards' rules (``study.shard``), the command line
(``cli.merge``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import LLMJudgeError
from .store import MIGRATIONS, Store
from .study.shard import RunState, join, read_shards


@dataclass(frozen=True)
class Conflict:
    """A row a source holds under a key the target holds with other content (the target's kept)."""

    table: str
    key: str
    source: str
    detail: str = ""


@dataclass
class MergeResult:
    """What a merge did: rows added and failures replaced by results, per table; the conflicts;
    the sources skipped because they are the target."""

    target: str
    sources: list[str]
    added: dict[str, int] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one summary line."""
        added, replaced = sum(self.added.values()), sum(self.replaced.values())
        return (f"merged {len(self.sources) - len(self.skipped)} store(s) into {self.target}: {added} rows added, "
                f"{replaced} failures replaced by results, {len(self.conflicts)} conflicts"
                + (" (the target's rows kept)" if self.conflicts else ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Table:
    """How a table's rows are matched: by ``key``; ``content`` compared (``as_json`` ones as JSON
    values); ``failed``: the status of a failure, which a result replaces and which replaces nothing."""

    name: str
    key: tuple[str, ...]
    content: tuple[str, ...] = ()
    as_json: frozenset[str] = frozenset()
    failed: str | None = None
    fresh_id: bool = False  # an ``id`` the target numbers itself (rows known by all they hold)


GLOBAL = (  # rows of no one run: results by key, the rest by all they hold
    _Table("generations", ("key",), ("spec", "sampling", "prompt", "status", "text"), frozenset({"sampling"}), "failed"),
    _Table("judgments", ("key",), ("kind", "judge_spec", "template_version", "display_order", "status", "raw",
                                   "verdict", "error"), frozenset({"verdict"}), "failed"),
    _Table("judge_cards", ("created_at", "judge", "gold_set", "method", "items", "card"), fresh_id=True),
    _Table("judge_profiles", ("created_at", "judge", "gold_set", "profile"), fresh_id=True),
    _Table("comparisons", ("created_at", "result"), fresh_id=True),
)
RUN_ROWS = (
    _Table("run_prompts", ("run_id", "prompt_id"), ("position", "prompt", "reference", "category", "conversation"),
           frozenset({"conversation"})),
    _Table("run_candidates", ("run_id", "label"), ("spec", "sampling"), frozenset({"sampling"})),
    _Table("run_items", ("run_id", "item"), ("prompt_id", "kind", "labels", "display_order", "result_key", "repeat",
                                             "turn"), frozenset({"labels"})),
    _Table("votes", ("run_id", "prompt_id", "label_a", "label_b", "shown_left", "choice", "created_at", "voter"),
           fresh_id=True),
    _Table("page_runs", ("run_id",)),
)
RUNS = _Table("runs", ("id",), ("config",), frozenset({"config"}))


def merge_stores(sources: Sequence[str | Path], into: str | Path) -> MergeResult:
    """Merge the stores at ``sources`` into the store at ``into`` (created where missing)."""
    paths = _checked_paths(sources, into)
    target = Store(into)
    try:
        result = MergeResult(str(into), [str(p) for p in paths])
        for path in paths:
            if _same_file(path, target.path):
                result.skipped.append(str(path))
                continue
            with _source(path) as src:
                _merge_one(src, target, str(path), result)
        return result
    finally:
        target.close()


def _checked_paths(sources: Sequence[str | Path], into: str | Path) -> list[Path]:
    """The sources as paths, each an existing file named once."""
    if not sources:
        raise LLMJudgeError("no store to merge: name the stores to merge, then the target")
    paths = [Path(p) for p in sources]
    for i, p in enumerate(paths):
        if not p.is_file():
            raise LLMJudgeError(f"no store at {p}: name the files `llm-judge run --db` wrote")
        if any(_same_file(p, q) for q in paths[:i]):
            raise LLMJudgeError(f"{p} is named twice: name each store to merge once")
    return paths


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextmanager
def _source(path: Path) -> Iterator[sqlite3.Connection]:
    """A source store opened read-only in one read transaction (one snapshot); a store of an
    older version (migrations it lacks) as a migrated copy, the file itself left as it is."""
    db = _read_only(path)
    try:
        if _migrated(db, path):
            db.execute("BEGIN")
            yield db
            return
        with tempfile.TemporaryDirectory(prefix="llm-judge-merge-") as tmp:
            copy = Path(tmp) / "source.db"
            out = sqlite3.connect(copy)
            try:
                db.backup(out)
            finally:
                out.close()
            Store(copy).close()  # its migrations, on the copy
            with _source(copy) as migrated:
                yield migrated
    finally:
        db.close()


def _read_only(path: Path) -> sqlite3.Connection:
    """The store at ``path`` for reading only; a store closed cleanly (no write-ahead log beside it)
    as immutable, so that not even the log's index files are left beside it."""
    live = Path(f"{path}-wal").exists()
    db = sqlite3.connect(f"{path.resolve().as_uri()}?{'mode=ro' if live else 'immutable=1'}", uri=True,
                         isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def _migrated(db: sqlite3.Connection, path: Path) -> bool:
    """Whether the store has every migration (False: read it from a migrated copy); a file that is
    not an llm-judge store is the one-line error."""
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise LLMJudgeError(f"{path} is not an llm-judge store ({exc}): name the files `llm-judge run --db` "
                            "wrote") from None
    if "runs" not in tables or not tables & {"schema_migrations", "migrations"}:
        raise LLMJudgeError(f"{path} is not an llm-judge store (it has no runs): name the files `llm-judge run "
                            "--db` wrote")
    if "schema_migrations" not in tables:
        return False
    done = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
    return {fn.__name__ for fn in MIGRATIONS} <= done


def _merge_one(src: sqlite3.Connection, target: Store, name: str, result: MergeResult) -> None:
    """One source into the target, in one transaction, every run it holds locked for writing."""
    run_ids = [r[0] for r in src.execute("SELECT id FROM runs")]
    with ExitStack() as locks:
        for run_id in run_ids:
            locks.enter_context(target.run_writer(run_id))
        with target.tx() as db:
            merged = [run_id for run_id in run_ids if _merge_run(src, db, run_id, name, result)]
            for table in GLOBAL:
                _merge_rows(src, db, table, None, name, result)
            for run_id in merged:
                added = sum(_merge_rows(src, db, table, run_id, name, result) for table in RUN_ROWS)
                if added:
                    _order_items(db, run_id)


# --- runs -------------------------------------------------------------------------------------

def _merge_run(src: sqlite3.Connection, db: sqlite3.Connection, run_id: str, name: str,
               result: MergeResult) -> bool:
    """The run's row: added, or joined with the target's; False where the two are in conflict."""
    theirs = src.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    ours = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
    if ours is None:
        _insert(db, RUNS, theirs)
        _bump(result.added, "runs")
        return True
    if json.loads(ours["config"]) != json.loads(theirs["config"]):
        result.conflicts.append(Conflict("runs", run_id, name, "another study's configuration under the same id"))
        return False
    try:
        joined = _joined_run(ours, theirs)
    except LLMJudgeError as exc:
        result.conflicts.append(Conflict("runs", run_id, name, str(exc)))
        return False
    if any(joined[k] != ours[k] for k in ("status", "manifest")):  # times alone are no news
        db.execute("UPDATE runs SET status=?, manifest=?, created_at=?, finished_at=? WHERE id=?",
                   (joined["status"], joined["manifest"], joined["created_at"], joined["finished_at"], run_id))
    return True


def _joined_run(ours: sqlite3.Row, theirs: sqlite3.Row) -> dict[str, Any]:
    """The target's run row joined with a source's: status and shards, manifest, first start, last finish."""
    mine, other = json.loads(ours["manifest"]), json.loads(theirs["manifest"])
    state = join(RunState(ours["status"], read_shards(mine)), RunState(theirs["status"], read_shards(other)))
    manifest = _joined_manifest(mine, other)
    if state.shards is not None:
        manifest["shards"] = state.shards.to_json()
    finished = [t for t in (ours["finished_at"], theirs["finished_at"]) if t is not None]
    return {"status": state.status, "manifest": _text(manifest) if manifest != mine else ours["manifest"],
            "created_at": min(ours["created_at"], theirs["created_at"]),
            "finished_at": max(finished) if finished else None}


def _joined_manifest(mine: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """The target's manifest with the source's warnings and the models it alone describes."""
    out = dict(mine)
    if mine.get("warnings") or other.get("warnings"):
        out["warnings"] = sorted(set(mine.get("warnings", [])) | set(other.get("warnings", [])))
    if mine.get("models") or other.get("models"):
        out["models"] = {**other.get("models", {}), **mine.get("models", {})}
    return out


# --- rows -------------------------------------------------------------------------------------

def _merge_rows(src: sqlite3.Connection, db: sqlite3.Connection, table: _Table, run_id: str | None, name: str,
                result: MergeResult) -> int:
    """Every row of ``table`` in the source (of one run where ``run_id`` is given) into the target;
    returns how many were added or replaced."""
    where, args = ("WHERE run_id=?", (run_id,)) if run_id is not None else ("", ())
    changed = 0
    for row in src.execute(f"SELECT * FROM {table.name} {where} ORDER BY rowid", args):
        changed += _merge_row(db, table, row, name, result)
    return changed


def _merge_row(db: sqlite3.Connection, table: _Table, row: sqlite3.Row, name: str, result: MergeResult) -> int:
    """One source row: added where the target lacks its key, replacing the target's failure with a
    result, else left (same content) or reported (other content); returns 1 where it was written."""
    match = " AND ".join(f"{k} IS ?" for k in table.key)
    ours = db.execute(f"SELECT * FROM {table.name} WHERE {match}", [row[k] for k in table.key]).fetchone()
    if ours is None:
        _insert(db, table, row)
        _bump(result.added, table.name)
        return 1
    if table.failed is not None and (row["status"] == table.failed or ours["status"] == table.failed):
        if row["status"] == table.failed:
            return 0  # a failure never replaces anything (a result, or another failure)
        _insert(db, table, row, replace=True)
        _bump(result.replaced, table.name)
        return 1
    differ = [c for c in table.content if not _same(c in table.as_json, ours[c], row[c])]
    if differ:
        key = "/".join(str(row[k]) for k in table.key)
        result.conflicts.append(Conflict(table.name, key, name, f"differs in {', '.join(differ)}"))
    return 0


def _same(as_json: bool, a: Any, b: Any) -> bool:
    if as_json and isinstance(a, str) and isinstance(b, str):
        return bool(json.loads(a) == json.loads(b))
    return bool(a == b)


def _insert(db: sqlite3.Connection, table: _Table, row: sqlite3.Row, replace: bool = False) -> None:
    """A source row into the target's table: the columns the target has, but an id it numbers itself."""
    have = {r[1] for r in db.execute(f"PRAGMA table_info({table.name})")}
    cols = [c for c in row.keys() if c in have and not (table.fresh_id and c == "id")]
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    db.execute(f"{verb} INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
               [row[c] for c in cols])


def _bump(counts: dict[str, int], table: str) -> None:
    counts[table] = counts.get(table, 0) + 1


def _order_items(db: sqlite3.Connection, run_id: str) -> None:
    """The run's items rewritten in their one order (turn, the prompt's position, item name) where
    they are not in it: the same rows, read in the order a run made whole would read them."""
    rows = db.execute("SELECT i.rowid AS rowid_, i.*, p.position FROM run_items i LEFT JOIN run_prompts p "
                      "ON p.run_id=i.run_id AND p.prompt_id=i.prompt_id WHERE i.run_id=? ORDER BY i.rowid",
                      (run_id,)).fetchall()
    ordered = sorted(rows, key=lambda r: (r["turn"], -1 if r["position"] is None else r["position"], r["item"]))
    if [r["rowid_"] for r in ordered] == [r["rowid_"] for r in rows]:
        return
    cols = [c for c in rows[0].keys() if c not in ("rowid_", "position")]
    db.execute("DELETE FROM run_items WHERE run_id=?", (run_id,))
    db.executemany(f"INSERT INTO run_items ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                   [[r[c] for c in cols] for r in ordered])


def _text(obj: object) -> str:
    """JSON as the store writes it."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)
