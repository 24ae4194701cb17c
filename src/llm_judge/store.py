"""The SQLite store: runs, prompts, generations and judgments, with numbered migrations.

Generations and judgments are keyed by a hash of everything that determines them, so they are
reused across runs; failures are stored as failures (status ``failed``) and are retried, never
reused. A stored answer is never replaced (the judgments made of it stay true to it), and a run
has one writer at a time (``run_writer``: a lock that dies with its process). Every write is its
own short transaction in WAL mode, so a run killed at any moment leaves a consistent database and
a reader (the UI) never sees half a result.

Reading and writing are typed: a run item is linked by an ``ItemLink``, a judgment is written
with its ``Verdict`` (pairwise, as shown: A = the answer shown first) or ``Grade`` and read back as
a ``StoredJudgment``, and ``items`` returns ``RunItem`` records whose pairwise verdict is in the
item's own labels (``Shown.in_labels``). The JSON form of verdicts lives here alone (``_encode`` /
``_decode``), writing exactly the shapes earlier versions wrote, so that old stores stay valid.

Left out: what a verdict means or how one is decided (``verdicts``), the cache keys of judgments
(``cache``), and any figure computed from a run (``study``).

Default path: ``$LLM_JUDGE_DB``, else ``llm-judge.db`` in the user's data directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from .errors import LLMJudgeError
from .records import ORDERS, Grade, Juror, Kind, Order, Probabilities, Shown, Verdict, swap_pairs, swap_sides
from .redact import redact

ItemKind = Literal["generation", "single", "pairwise", "auxiliary"]
# a run item's display order: pairwise AB/BA, a generation "-", single the label graded (a candidate's: any str)
Slot = Order | Literal["-"] | str
Status = Literal["scored", "unscored", "failed"]
Migration = Callable[[sqlite3.Connection], None]
T = TypeVar("T")


def default_db_path() -> Path:
    env = os.environ.get("LLM_JUDGE_DB")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("llm-judge")) / "llm-judge.db"


def cache_key(kind: str, **parts: Any) -> str:
    """A stable key from everything that determines a result.

    >>> cache_key("gen", spec="embedded", prompt="hi") == cache_key("gen", prompt="hi", spec="embedded")
    True
    """
    blob = json.dumps({"kind": kind, **parts}, sort_keys=True, ensure_ascii=False, default=str)
    # surrogatepass: a lone surrogate (a model's answer may hold one) still has its own key
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


# Named migrations, applied in order inside one immediate transaction and recorded by name in
# `schema_migrations` (simonw/llm's pattern). Append new ones; never edit one that has shipped.
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run several statements on ``db`` inside the caller's transaction (executescript would commit)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    _script(db, """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, created_at REAL NOT NULL, finished_at REAL,
        config TEXT NOT NULL, manifest TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'running');
    CREATE TABLE run_prompts (
        run_id TEXT NOT NULL REFERENCES runs(id), prompt_id TEXT NOT NULL, position INTEGER NOT NULL,
        prompt TEXT NOT NULL, reference TEXT, category TEXT, PRIMARY KEY (run_id, prompt_id));
    CREATE TABLE run_candidates (
        run_id TEXT NOT NULL REFERENCES runs(id), label TEXT NOT NULL, spec TEXT NOT NULL,
        sampling TEXT NOT NULL, PRIMARY KEY (run_id, label));
    CREATE TABLE generations (
        key TEXT PRIMARY KEY, spec TEXT NOT NULL, sampling TEXT NOT NULL, prompt TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), text TEXT, error TEXT,
        prompt_tokens INTEGER, completion_tokens INTEGER, seconds REAL, finish_reason TEXT,
        created_at REAL NOT NULL);
    CREATE TABLE judgments (
        key TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('single', 'pairwise')),
        judge_spec TEXT NOT NULL, template_version TEXT NOT NULL, display_order TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('scored', 'unscored', 'failed')),
        raw TEXT, verdict TEXT, error TEXT, completion_tokens INTEGER, seconds REAL,
        created_at REAL NOT NULL);
    CREATE TABLE run_items (
        run_id TEXT NOT NULL REFERENCES runs(id), item TEXT NOT NULL, prompt_id TEXT NOT NULL,
        kind TEXT NOT NULL, labels TEXT NOT NULL, display_order TEXT NOT NULL, result_key TEXT NOT NULL,
        PRIMARY KEY (run_id, item));
    CREATE INDEX run_items_by_run ON run_items(run_id, kind);
    """)


@migration
def m002_judge_logprobs(db: sqlite3.Connection) -> None:
    """The judge's per-token log probabilities, where the server gives them."""
    db.execute("ALTER TABLE judgments ADD COLUMN logprobs TEXT")


@migration
def m003_comparisons_and_votes(db: sqlite3.Connection) -> None:
    """Comparisons made in the page, and human votes on the answers of stored runs."""
    _script(db, """
        CREATE TABLE comparisons (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, result TEXT NOT NULL);
        CREATE TABLE votes (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(id), prompt_id TEXT NOT NULL,
            label_a TEXT NOT NULL, label_b TEXT NOT NULL, shown_left TEXT NOT NULL,
            choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')), created_at REAL NOT NULL);
        CREATE INDEX votes_by_run ON votes(run_id)""")


@migration
def m004_run_item_repeat(db: sqlite3.Connection) -> None:
    """The repeat a run item belongs to (--repeat N judges each item N times; 0 is the first)."""
    db.execute("ALTER TABLE run_items ADD COLUMN repeat INTEGER NOT NULL DEFAULT 0")


@migration
def m005_pairwise_verdicts_as_shown(db: sqlite3.Connection) -> None:
    """Pairwise verdicts are stored as the judge gave them (A = the answer shown first), because a
    stored judgment is reused for every item that shows the same texts in the same positions;
    each run item maps it to its own labels by its display order. Verdicts of BA calls were stored
    in the candidates' labels before: swap them to the positions shown."""
    rows = db.execute("SELECT key, verdict FROM judgments WHERE kind='pairwise' AND display_order='BA' "
                      "AND verdict IS NOT NULL").fetchall()
    for key, verdict in rows:
        db.execute("UPDATE judgments SET verdict=? WHERE key=?", (_j(_swap_stored(json.loads(verdict))), key))


@migration
def m006_judge_cards(db: sqlite3.Connection) -> None:
    """Judge cards: a judge's figures on a gold-labelled set (``llm-judge judges eval``)."""
    _script(db, """
        CREATE TABLE judge_cards (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, judge TEXT NOT NULL,
            gold_set TEXT NOT NULL, method TEXT NOT NULL, items INTEGER NOT NULL, card TEXT NOT NULL);
        CREATE INDEX judge_cards_by_judge ON judge_cards(judge)""")


@migration
def m007_conversation_turns(db: sqlite3.Connection) -> None:
    """Conversations: a prompt's later turns, references and fixed earlier messages (JSON), and the
    turn each run item answers or judges (1: the first)."""
    db.execute("ALTER TABLE run_prompts ADD COLUMN conversation TEXT")
    db.execute("ALTER TABLE run_items ADD COLUMN turn INTEGER NOT NULL DEFAULT 1")


@migration
def m008_page_runs_and_voters(db: sqlite3.Connection) -> None:
    """The runs a page started (a public page lists only those), and who cast each vote (one counts
    per voter and pair; the votes of older stores have none and count as one unknown voter's)."""
    _script(db, """
        CREATE TABLE page_runs (run_id TEXT PRIMARY KEY, created_at REAL NOT NULL);
        ALTER TABLE votes ADD COLUMN voter TEXT""")


@migration
def m009_judge_profiles(db: sqlite3.Connection) -> None:
    """Judge profiles: the protocol, method and format ``llm-judge judges tune`` chose for a judge
    on a gold set's dev split, with its held-out figures (``--protocol auto`` reads the latest)."""
    _script(db, """
        CREATE TABLE judge_profiles (
            id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, judge TEXT NOT NULL,
            gold_set TEXT NOT NULL, profile TEXT NOT NULL);
        CREATE INDEX judge_profiles_by_judge ON judge_profiles(judge)""")


@migration
def m010_run_batches(db: sqlite3.Connection) -> None:
    """The batches a run sent (``run --batch``, ``--batch-files``): its request file, then the batch
    made of it, so that running the same study again reads those batches instead of paying twice.
    ``status``: uploaded, the batch's own as last seen (validating ... completed, failed, expired,
    cancelled), then read (its answers are in the store), gone (its files are) or refused."""
    _script(db, """
        CREATE TABLE run_batches (
            run_id TEXT NOT NULL, input_file TEXT NOT NULL, batch_id TEXT, spec TEXT NOT NULL,
            model TEXT NOT NULL, base_url TEXT NOT NULL, requests INTEGER NOT NULL, status TEXT NOT NULL,
            created_at REAL NOT NULL, PRIMARY KEY (run_id, input_file))""")


@dataclass(frozen=True)
class ItemLink:
    """Which run item a result answers: its run, name, prompt, kind, candidates' labels, display
    order (pairwise AB/BA, single the label graded, a generation "-"), repeat and turn."""

    run_id: str
    item: str
    prompt_id: str
    kind: ItemKind
    labels: tuple[str, ...]
    order: Slot
    repeat: int = 0
    turn: int = 1


@dataclass(frozen=True)
class StoredJudgment:
    """A judgment as stored under its key; a pairwise ``verdict`` as shown (A = shown first)."""

    key: str
    kind: Kind
    judge_spec: str
    order: Slot
    status: Status
    raw: str | None
    verdict: Verdict | Grade | None
    error: str | None
    completion_tokens: int | None
    seconds: float | None


@dataclass(frozen=True)
class RunItem:
    """One result of a run: the item (``ItemLink``'s fields) with its judgment or generation.

    ``verdict`` is in the item's labels (A = ``labels[0]``) whatever order it was shown in;
    ``status`` and ``error`` are the generation's for a generation, the judgment's otherwise;
    ``tokens`` and ``seconds`` are a generation's cost (None for a judgment)."""

    item: str
    prompt_id: str
    kind: ItemKind
    labels: tuple[str, ...]
    order: Slot
    repeat: int
    turn: int
    result_key: str
    status: str | None = None
    raw: str | None = None
    verdict: Verdict | Grade | None = None
    error: str | None = None
    judge_spec: str | None = None
    text: str | None = None
    tokens: int | None = None
    seconds: float | None = None


class Store:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.lock = threading.RLock()  # one transaction at a time on this connection (UI threads)
            _retry_busy(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            # a commit is in the log at once, on disk at the next checkpoint: a killed process loses
            # none, a power cut the last moments (a run's batches are written durably: ``tx``)
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise LLMJudgeError(f"cannot use {self.path} as the store ({exc}): give another path with "
                                "--db or LLM_JUDGE_DB") from None
        except OSError as exc:
            raise LLMJudgeError(f"cannot create the store at {self.path}: {exc.strerror}; give a writable "
                                "path with --db or LLM_JUDGE_DB") from None

    def migrate(self) -> list[str]:
        """Apply the migrations this database lacks, all in one immediate transaction, so that two
        processes opening a new database at once cannot both create its tables; returns their names."""
        applied = []
        with self.tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='migrations'").fetchone():
                # databases of llm-judge 0.1 numbered their migrations 1-4
                for (version, at) in db.execute("SELECT version, applied_at FROM migrations").fetchall():
                    db.execute("INSERT OR IGNORE INTO schema_migrations VALUES (?, ?)",
                               (MIGRATIONS[version - 1].__name__, at or 0.0))
                db.execute("DROP TABLE migrations")
            done = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
            for fn in MIGRATIONS:
                if fn.__name__ not in done:
                    fn(db)
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (fn.__name__, time.time()))
                    applied.append(fn.__name__)
        return applied

    def tx(self, durable: bool = False) -> _Tx:
        """One immediate transaction; ``durable``: on disk when it returns, a power cut included (a
        run's batches, which are paid for), where other commits are in the log at once and on disk
        at the next checkpoint."""
        return _Tx(self.db, self.lock, durable)

    # --- runs --------------------------------------------------------------------------------
    def create_run(self, run_id: str, config: Mapping[str, Any], manifest: Mapping[str, Any], prompts: Sequence[Any],
                   candidates: Mapping[str, Any]) -> bool:
        """Create the run unless it exists; returns True when it was new."""
        with self.tx():
            if self.db.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone():
                self.db.execute("UPDATE runs SET status='running' WHERE id=?", (run_id,))
                return False
            self.db.execute("INSERT INTO runs (id, created_at, config, manifest) VALUES (?,?,?,?)",
                            (run_id, time.time(), _j(config), _j(manifest)))
            self.db.executemany(
                "INSERT INTO run_prompts (run_id, prompt_id, position, prompt, reference, category, conversation) "
                "VALUES (?,?,?,?,?,?,?)",
                [(run_id, p.id, i, p.prompt, p.reference, p.category, _j(p.conversation()) if p.turns > 1 or p.context
                  else None) for i, p in enumerate(prompts)])
            self.db.executemany("INSERT INTO run_candidates VALUES (?,?,?,?)",
                                [(run_id, lab, c.spec, _j(c.sampling.model_dump())) for lab, c in candidates.items()])
        return True

    def run_writer(self, run_id: str) -> RunWriter:
        """The lock that makes this process the one writer of a run (``with store.run_writer(id):``)."""
        return RunWriter(self.path.with_name(f"{self.path.name}.run-{run_id}.lock"), run_id)

    def finish_run(self, run_id: str, status: str = "done") -> None:
        with self.tx():
            self.db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?", (status, time.time(), run_id))

    def update_manifest(self, run_id: str, *, models: Mapping[str, Any] | None = None,
                        warnings: Sequence[str] = ()) -> None:
        """Record in a run's manifest what its calls settled: each model's description as it stands
        after the run (a server's structured-output mode, say) and what the backends warned about."""
        with self.tx():
            row = self.db.execute("SELECT manifest FROM runs WHERE id=?", (run_id,)).fetchone()
            manifest = json.loads(row["manifest"])
            if models:
                manifest["models"] = {**manifest.get("models", {}), **models}
            if warnings:
                manifest["warnings"] = sorted(set(manifest.get("warnings", [])) | {redact(w) for w in warnings})
            self.db.execute("UPDATE runs SET manifest=? WHERE id=?", (_j(manifest), run_id))

    def set_manifest_entry(self, run_id: str, name: str, value: Callable[[Mapping[str, Any], str], Any]) -> None:
        """Set one entry of a run's manifest to ``value(manifest, status)``, read and written in one
        transaction; a value of None, or a run not stored, leaves the store as it is."""
        with self.tx():
            row = self.db.execute("SELECT manifest, status FROM runs WHERE id=?", (run_id,)).fetchone()
            manifest = {} if row is None else json.loads(row["manifest"])
            new = None if row is None else value(manifest, row["status"])
            if new is not None and manifest.get(name) != new:
                self.db.execute("UPDATE runs SET manifest=? WHERE id=?", (_j({**manifest, name: new}), run_id))

    def run(self, run_id: str) -> sqlite3.Row:
        rows = self.db.execute("SELECT * FROM runs WHERE id=? OR id LIKE ?", (run_id, f"{run_id}%")).fetchall()
        if not rows:
            raise LLMJudgeError(f"no run {run_id!r} in {self.path}: `llm-judge runs` lists the stored runs")
        if len(rows) > 1:
            raise LLMJudgeError(f"run id {run_id!r} is ambiguous: give more characters")
        return cast(sqlite3.Row, rows[0])

    def runs(self, page_only: bool = False) -> list[sqlite3.Row]:
        """Every stored run, newest first (``page_only``: those a page started)."""
        return self.db.execute("""
            SELECT r.*, (SELECT COUNT(*) FROM run_prompts p WHERE p.run_id=r.id) AS n_prompts,
                   (SELECT COUNT(*) FROM run_candidates c WHERE c.run_id=r.id) AS n_candidates
            FROM runs r WHERE NOT ? OR r.id IN (SELECT run_id FROM page_runs) ORDER BY created_at DESC""",
                               (page_only,)).fetchall()

    def mark_page_run(self, run_id: str) -> None:
        """Record that a page started this run, where it exists (a public page shows only such runs)."""
        with self.tx():
            self.db.execute("INSERT OR IGNORE INTO page_runs SELECT id, ? FROM runs WHERE id=?", (time.time(), run_id))

    def prompts(self, run_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM run_prompts WHERE run_id=? ORDER BY position", (run_id,)).fetchall()

    def candidates(self, run_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM run_candidates WHERE run_id=? ORDER BY rowid", (run_id,)).fetchall()

    # --- batches -----------------------------------------------------------------------------
    def add_batch(self, run_id: str, input_file: str, spec: str, model: str, base_url: str, requests: int) -> None:
        """A run's request file, uploaded (or written), before any batch is made of it."""
        with self.tx(durable=True):
            self.db.execute("INSERT OR IGNORE INTO run_batches VALUES (?,?,?,?,?,?,?,?,?)",
                            (run_id, input_file, None, spec, model, base_url, requests, "uploaded", time.time()))

    def set_batch(self, run_id: str, input_file: str, *, batch_id: str | None = None, status: str) -> None:
        """The batch made of a run's request file, and its status as last seen."""
        with self.tx(durable=batch_id is not None):
            self.db.execute("UPDATE run_batches SET batch_id=COALESCE(?, batch_id), status=? WHERE run_id=? "
                            "AND input_file=?", (batch_id, status, run_id, input_file))

    def batches(self, run_id: str) -> list[sqlite3.Row]:
        """The run's batches, oldest first."""
        return self.db.execute("SELECT * FROM run_batches WHERE run_id=? ORDER BY created_at, rowid",
                               (run_id,)).fetchall()

    # --- results -----------------------------------------------------------------------------
    def generation(self, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute("SELECT * FROM generations WHERE key=? AND status='ok'",
                                                  (key,)).fetchone()
        return row

    def put_generation(self, key: str, spec: str, sampling: Mapping[str, Any], prompt: str, *, text: str | None = None,
                       error: str | None = None, prompt_tokens: int | None = None,
                       completion_tokens: int | None = None, seconds: float | None = None,
                       finish_reason: str | None = None, link: ItemLink | None = None) -> str | None:
        """Store an answer (or its failure) unless an answer is stored under ``key`` already, and
        return the answer stored: the first one written stays, whoever wrote it (another process,
        another run), because judgments are attached to it. None when only a failure is stored.
        ``link``: the run item it answers, linked in the same transaction where an answer is stored."""
        status = "failed" if error else "ok"
        error = None if error is None else redact(error)
        with self.tx():
            stored = self.db.execute("SELECT text FROM generations WHERE key=? AND status='ok'", (key,)).fetchone()
            if stored is not None:
                if link is not None:
                    self._link(link, key)
                return cast(str, stored["text"])  # an answer is never replaced, by a failure or by another answer
            self.db.execute("INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                            (key, spec, _j(sampling), prompt, status, text, error, prompt_tokens,
                             completion_tokens, seconds, finish_reason, time.time()))
            if link is not None and status == "ok":
                self._link(link, key)
        return text if status == "ok" else None

    def judgment(self, key: str) -> StoredJudgment | None:
        """The judgment stored under ``key``, unless only a failure is (a failure is retried)."""
        row = self.db.execute("SELECT * FROM judgments WHERE key=? AND status!='failed'", (key,)).fetchone()
        if row is None:
            return None
        return StoredJudgment(row["key"], row["kind"], row["judge_spec"], row["display_order"], row["status"],
                              row["raw"], _decode(row["kind"], row["verdict"]), row["error"],
                              row["completion_tokens"], row["seconds"])

    def put_judgment(self, key: str, kind: Kind, judge_spec: str, template_version: str, order: Slot, *,
                     status: Status, raw: str | None = None, verdict: Verdict | Grade | None = None,
                     error: str | None = None, completion_tokens: int | None = None, seconds: float | None = None,
                     logprobs: object = None, link: ItemLink | None = None) -> None:
        """Store a judgment and, in the same transaction, link it to its run item.

        A pairwise ``verdict`` is given as the judge gave it: A is the answer shown first.
        """
        error = None if error is None else redact(error)
        with self.tx():
            if status == "failed" and self.db.execute(
                    "SELECT 1 FROM judgments WHERE key=? AND status!='failed'", (key,)).fetchone():
                return  # a failure never replaces a result
            self.db.execute(
                "INSERT OR REPLACE INTO judgments (key, kind, judge_spec, template_version, display_order, status, raw, "
                "verdict, error, completion_tokens, seconds, created_at, logprobs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, kind, judge_spec, template_version, order, status, raw,
                 None if verdict is None else _j(_encode(verdict)), error, completion_tokens, seconds, time.time(),
                 None if logprobs is None else _j(logprobs)))
            if link:
                self._link(link, key)

    def link(self, link: ItemLink, *, result_key: str) -> None:
        """Link a run item to the result stored under ``result_key`` (a relink replaces the old one)."""
        with self.tx():
            self._link(link, result_key)

    def _link(self, link: ItemLink, result_key: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO run_items (run_id, item, prompt_id, kind, labels, display_order, "
                        "result_key, repeat, turn) VALUES (?,?,?,?,?,?,?,?,?)",
                        (link.run_id, link.item, link.prompt_id, link.kind, _j(list(link.labels)), link.order,
                         result_key, link.repeat, link.turn))

    def items(self, run_id: str, kind: ItemKind | None = None, repeat: int | None = 0) -> list[RunItem]:
        """Every result of a run, joined with its generation or judgment (``repeat=None``: all
        repeats), in the order linked; pairwise verdicts in each item's labels."""
        # each item joined with the one table that holds its result: the generations (an answer, a
        # protocol's auxiliary text) or the judgments
        where = "i.run_id=? AND (? IS NULL OR i.kind=?) AND (? IS NULL OR i.repeat=?)"
        rows = self.db.execute(f"""
            SELECT * FROM (
                SELECT i.rowid AS linked, i.*, NULL AS j_status, NULL AS raw, NULL AS verdict, NULL AS j_error,
                       NULL AS judge_spec, g.status AS g_status, g.text, g.error AS g_error,
                       g.completion_tokens AS g_tokens, g.seconds AS g_seconds
                FROM run_items i LEFT JOIN generations g ON g.key=i.result_key
                WHERE i.kind IN ('generation', 'auxiliary') AND {where}
                UNION ALL
                SELECT i.rowid AS linked, i.*, j.status, j.raw, j.verdict, j.error, j.judge_spec,
                       NULL, NULL, NULL, NULL, NULL
                FROM run_items i LEFT JOIN judgments j ON j.key=i.result_key
                WHERE i.kind NOT IN ('generation', 'auxiliary') AND {where})
            ORDER BY linked""", (run_id, kind, kind, repeat, repeat) * 2).fetchall()
        labels: dict[str, tuple[str, ...]] = {}  # a run has a few label lists: each read once
        return [_run_item(r, labels) for r in rows]

    def save_comparison(self, result: Mapping[str, Any]) -> int:
        with self.tx():
            cur = self.db.execute("INSERT INTO comparisons (created_at, result) VALUES (?, ?)", (time.time(), _j(result)))
            return cast(int, cur.lastrowid)

    def comparisons(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM comparisons ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [{"id": r["id"], "created_at": r["created_at"], **json.loads(r["result"])} for r in rows]

    def add_vote(self, run_id: str, prompt_id: str, label_a: str, label_b: str, shown_left: str, choice: str,
                 voter: str | None = None) -> None:
        """A human's verdict on (label_a, label_b) of one prompt, in those original labels; ``voter``
        names who cast it (None: unknown)."""
        if choice not in ("A", "B", "tie"):
            raise LLMJudgeError(f"a vote is A, B or tie, not {choice!r}")
        with self.tx():
            self.db.execute("INSERT INTO votes (run_id, prompt_id, label_a, label_b, shown_left, choice, created_at, "
                            "voter) VALUES (?,?,?,?,?,?,?,?)",
                            (run_id, prompt_id, label_a, label_b, shown_left, choice, time.time(), voter))

    def votes(self, run_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM votes WHERE run_id=? ORDER BY id", (run_id,)).fetchall()

    def add_card(self, card: Mapping[str, Any]) -> int:
        """Store a judge card (``judges.card``); returns its id."""
        with self.tx():
            cur = self.db.execute("INSERT INTO judge_cards (created_at, judge, gold_set, method, items, card) "
                                  "VALUES (?,?,?,?,?,?)", (time.time(), card["judge"], card["set"],
                                                           card.get("method", "plain"), card["items"], _j(card)))
            return cast(int, cur.lastrowid)

    def cards(self, judge: str | None = None) -> list[dict[str, Any]]:
        """Stored judge cards, newest first (of one judge when named)."""
        rows = self.db.execute("SELECT * FROM judge_cards WHERE ? IS NULL OR judge=? ORDER BY id DESC",
                               (judge, judge)).fetchall()
        return [{"id": r["id"], "created_at": r["created_at"], **json.loads(r["card"])} for r in rows]

    def add_profile(self, judge: str, gold_set: str, profile: Mapping[str, Any]) -> int:
        """Store a judge's tuned profile (``tune.tune``'s choice); returns its id."""
        with self.tx():
            cur = self.db.execute("INSERT INTO judge_profiles (created_at, judge, gold_set, profile) VALUES (?,?,?,?)",
                                  (time.time(), judge, gold_set, _j(profile)))
            return cast(int, cur.lastrowid)

    def profile(self, judge: str) -> dict[str, Any] | None:
        """The judge's latest tuned profile (None when it has none)."""
        row = self.db.execute("SELECT * FROM judge_profiles WHERE judge=? ORDER BY id DESC LIMIT 1",
                              (judge,)).fetchone()
        return None if row is None else {"id": row["id"], "created_at": row["created_at"], **json.loads(row["profile"])}

    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self.db.close()


class RunWriter:
    """One writer per run: an exclusive ``flock`` on ``<db>.run-<id>.lock`` beside the store, taken
    without waiting. The kernel drops it with its process (``kill -9`` leaves no stale lock); the
    holder writes its pid in the file so that a refused process can name it, and removes the file
    when done (a process that locked a removed file sees it is no longer the one at that path)."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path, self.run_id = path, run_id
        self.fd: int | None = None

    def __enter__(self) -> RunWriter:
        while self.fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                os.close(fd)
                raise LLMJudgeError(self._busy(holder)) from None
            if _same_file(fd, self.path):
                self.fd = fd
            else:
                os.close(fd)  # its holder removed it as we opened it: lock the file now at that path
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *_: object) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # before unlocking: a waiter then sees a removed file
            os.close(self.fd)
            self.fd = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LLMJudgeError(f"cannot create the run's lock file {self.path}: {exc.strerror}; give a "
                                "writable store path with --db or LLM_JUDGE_DB") from None

    def _busy(self, holder: str) -> str:
        who = f"another process (pid {holder})" if holder.isdigit() else "another process"
        return (f"run {self.run_id} is being written by {who}: wait for it to finish (or stop it), then run "
                "the same study again to continue it")


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    return (st.st_dev, st.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino)


def _retry_busy(fn: Callable[[], T], seconds: float = 30.0) -> T:
    """Run ``fn``, retrying while another process holds the lock it needs (switching a new database
    to WAL takes an exclusive lock and does not wait on its own)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class _Tx:
    def __init__(self, db: sqlite3.Connection, lock: threading.RLock, durable: bool = False) -> None:
        self.db, self.lock, self.durable = db, lock, durable

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        try:
            if self.durable:
                self.db.execute("PRAGMA synchronous=FULL")
            _retry_busy(lambda: self.db.execute("BEGIN IMMEDIATE"))
        except BaseException:
            self.lock.release()
            raise
        return self.db

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> Literal[False]:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            if self.durable:
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.lock.release()
        return False


def _j(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def _run_item(r: sqlite3.Row, labels: dict[str, tuple[str, ...]]) -> RunItem:
    """A row of ``items``' join as a typed run item, its pairwise verdict in the item's labels
    (``labels``: the label lists read so far, by their JSON)."""
    generation = r["kind"] == "generation"
    verdict = None if generation else _decode(r["kind"], r["verdict"])
    if isinstance(verdict, Verdict):  # stored as shown; this item's labels by its display order
        verdict = Shown(verdict, r["display_order"]).in_labels()
    text = r["labels"]
    item_labels = labels.get(text)
    if item_labels is None:
        item_labels = labels[text] = tuple(json.loads(text))
    return RunItem(r["item"], r["prompt_id"], r["kind"], item_labels, r["display_order"],
                   r["repeat"], r["turn"], r["result_key"], r["g_status"] if generation else r["j_status"],
                   r["raw"], verdict, r["g_error"] if generation else r["j_error"], r["judge_spec"], r["text"],
                   r["g_tokens"], r["g_seconds"])


# --- the JSON form of verdicts: the one place it is read and written ------------------------------
# The shapes are those every earlier version wrote (sort_keys JSON; an int stays an int):
#   pairwise  {"justification", "scores": {criterion: {"A": n, "B": n}}, "winner", "jurors"?, "weighted"?, "strong"?}
#   single    {"justification", "scores": {criterion: n}, "total", "jurors"?, "weighted"?}
#   weighted  {"winner"?: {"A", "B", "tie": p}, "scores"?: {criterion: {"A": e, "B": e}} or {criterion: e}}
#   juror     {"judge", "winner", "error", "total"?, "weighted"?}

def _encode(verdict: Verdict | Grade) -> dict[str, Any]:
    """A verdict's stored JSON object (pairwise: in the frame it is given in)."""
    # keys in the order outputs always printed them (the store sorts them): scores, a model's winner,
    # justification, a jury's jurors, then a jury's winner or a grade's total, then the probabilities
    out: dict[str, Any] = {"scores": {c: dict(pair) for c, pair in verdict.scores.items()}
                           if isinstance(verdict, Verdict) else dict(verdict.scores)}
    if isinstance(verdict, Verdict) and not verdict.jurors:
        out["winner"] = verdict.winner
    out["justification"] = verdict.justification
    if verdict.jurors:
        out["jurors"] = [_encode_juror(j) for j in verdict.jurors]
    if isinstance(verdict, Verdict):
        out.setdefault("winner", verdict.winner)
    else:
        out["total"] = verdict.total
    if verdict.probabilities is not None:
        out["weighted"] = _encode_probabilities(verdict.probabilities)
    if isinstance(verdict, Verdict) and verdict.strong:
        out["strong"] = True  # written only when true: every other verdict's JSON stays as it was
    return out


def verdict_json(verdict: Verdict | Grade) -> dict[str, Any]:
    """A verdict's JSON object as the store writes it (for output that shows one, e.g. ``--json``)."""
    return _encode(verdict)


def labelled_json(verdict: Verdict | Grade, order: Slot) -> dict[str, Any]:
    """A run item's verdict (pairwise: in the item's labels, shown in ``order``) as the JSON object
    earlier versions read back and exported: the stored object (keys sorted), a pairwise one shown
    second-first relabelled in place, so that its pairs read B before A as they always did."""
    if not isinstance(verdict, Verdict) or order not in ORDERS:
        return dict(json.loads(_j(_encode(verdict))))
    stored = dict(json.loads(_j(_encode(Shown.from_labels(verdict, order).verdict))))
    return stored if order == ORDERS[0] else _swap_stored(stored)


def _encode_probabilities(p: Probabilities) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.winner is not None:
        out["winner"] = dict(p.winner)
    if p.scores is not None:
        out["scores"] = {c: dict(v) if isinstance(v, Mapping) else v for c, v in p.scores.items()}
    return out


def _encode_juror(j: Juror) -> dict[str, Any]:
    out: dict[str, Any] = {"judge": j.judge, "winner": j.winner, "error": j.error}
    if j.total is not None:
        out["total"] = j.total
    if j.probabilities is not None:
        out["weighted"] = _encode_probabilities(j.probabilities)
    return out


def _decode(kind: str, text: str | None) -> Verdict | Grade | None:
    """A stored verdict (pairwise: in the frame it was stored in); None where none is stored."""
    if not text:
        return None
    d = json.loads(text)
    jurors = tuple(_decode_juror(j) for j in d.get("jurors") or ())
    probabilities = _decode_probabilities(d.get("weighted"))
    if kind == "pairwise":
        return Verdict(d["winner"], d.get("scores") or {}, d.get("justification", ""), probabilities, jurors,
                       bool(d.get("strong")))
    return Grade(d.get("scores") or {}, d["total"], d.get("justification", ""), probabilities, jurors)


def _decode_probabilities(d: Mapping[str, Any] | None) -> Probabilities | None:
    return None if d is None else Probabilities(d.get("winner"), d.get("scores"))


def _decode_juror(d: Mapping[str, Any]) -> Juror:
    return Juror(d["judge"], d.get("winner"), d.get("error"), d.get("total"), _decode_probabilities(d.get("weighted")))


def _swap_stored(verdict: dict[str, Any]) -> dict[str, Any]:
    """m005's relabelling of a stored pairwise verdict, on its JSON as it was then (whatever keys
    it holds): winner, each criterion's {A, B} pair, the weighted probabilities and the jurors'."""
    out = dict(verdict)
    if isinstance(out.get("winner"), str):
        out["winner"] = {"A": "B", "B": "A"}.get(out["winner"], out["winner"])
    if out.get("scores"):
        out["scores"] = swap_pairs(out["scores"])
    if out.get("weighted"):
        weighted = dict(out["weighted"])
        if weighted.get("winner"):
            weighted["winner"] = swap_sides(weighted["winner"])
        if weighted.get("scores"):
            weighted["scores"] = swap_pairs(weighted["scores"])
        out["weighted"] = weighted
    if out.get("jurors"):
        out["jurors"] = [_swap_stored(j) for j in out["jurors"]]
    return out

