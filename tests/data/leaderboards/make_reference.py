"""Make the reference fixtures of tests/test_leaderboards.py and tests/test_soft_preferences.py:
fixed, seeded synthetic inputs, and what the leaderboards' own code computes from them.

Run once, by hand, in a scratch environment that has the reference packages (never by the tests):

    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install pandas numpy scikit-learn tqdm alpaca_eval patsy
    /tmp/refvenv/bin/python tests/data/leaderboards/make_reference.py

It writes ``mt_bench.json``, ``arena_hard.json`` and ``alpaca_eval.json`` beside itself, each with
its input and the reference's output, and the versions used.

Sources, copied verbatim below where the function cannot be imported (each marked):
- FastChat ``fastchat/llm_judge/show_result.py`` (lm-sys/FastChat at 0e6d3e4b, Apache-2.0):
  ``display_result_single``.
- arena-hard-auto ``show_result.py`` and ``utils_math.py`` (lm-sys/arena-hard-auto at efc012e,
  Apache-2.0): ``get_battles_from_row`` (without style metadata), ``compute_mle_elo``,
  ``get_bootstrap_result``, ``predict_win_rate`` (``np.NAN`` written ``np.nan``: numpy 2 removed
  the alias), ``get_win_rate_column`` and the table of ``__main__``.
- alpaca_eval (tatsu-lab/alpaca_eval, Apache-2.0, installed from PyPI): ``pairwise_to_winrate``,
  ``fit_LogisticRegressionCV`` and ``make_dmatrix_for_model`` imported; the featurisation of
  ``_get_featurized_data`` copied without its download (the instruction difficulty comes from the
  synthetic file here; no gamed baselines, i.e. ``regularize_to_baseline_lambda=None``), and the
  prediction of ``get_length_controlled_winrate``.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------- FastChat show_result.py (verbatim)
def display_result_single(args):
    if args.input_file is None:
        input_file = (
            f"data/{args.bench_name}/model_judgment/{args.judge_model}_single.jsonl"
        )
    else:
        input_file = args.input_file

    print(f"Input file: {input_file}")
    df_all = pd.read_json(input_file, lines=True)
    df = df_all[["model", "score", "turn"]]
    df = df[df["score"] != -1]

    if args.model_list is not None:
        df = df[df["model"].isin(args.model_list)]

    print("\n########## First turn ##########")
    df_1 = df[df["turn"] == 1].groupby(["model", "turn"]).mean()
    print(df_1.sort_values(by="score", ascending=False))

    if args.bench_name == "mt_bench":
        print("\n########## Second turn ##########")
        df_2 = df[df["turn"] == 2].groupby(["model", "turn"]).mean()
        print(df_2.sort_values(by="score", ascending=False))

        print("\n########## Average ##########")
        df_3 = df[["model", "score"]].groupby(["model"]).mean()
        print(df_3.sort_values(by="score", ascending=False))


def mt_bench() -> dict:
    rng = np.random.default_rng(20)
    skill = {"gpt-4": 8.6, "claude-v1": 7.8, "vicuna-13b": 6.4, "llama-13b": 2.9}
    rows = []
    for m, s in skill.items():
        for q in range(81, 101):
            for turn in (1, 2):
                score = float(np.clip(np.round(rng.normal(s - 0.6 * (turn - 1), 1.6)), 1, 10))
                if rng.random() < 0.05:
                    score = -1.0  # FastChat's unreadable judgment: dropped
                elif rng.random() < 0.05:
                    score += 0.5 if score < 10 else -0.5  # a decimal rating ([[7.5]])
                rows.append({"question_id": q, "model": m, "judge": ["gpt-4", "single-v1"], "turn": turn,
                             "score": score})
    path = Path("/tmp/mt_bench_single.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = SimpleNamespace(input_file=str(path), bench_name="mt_bench", judge_model="gpt-4", model_list=None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        display_result_single(args)
    # the same frames as display_result_single, kept as numbers (its print rounds to 6 digits)
    df = pd.read_json(path, lines=True)[["model", "score", "turn"]]
    df = df[df["score"] != -1]
    first = df[df["turn"] == 1].groupby(["model", "turn"]).mean().sort_values(by="score", ascending=False)
    second = df[df["turn"] == 2].groupby(["model", "turn"]).mean().sort_values(by="score", ascending=False)
    avg = df[["model", "score"]].groupby(["model"]).mean().sort_values(by="score", ascending=False)
    return {"source": "lm-sys/FastChat 0e6d3e4b fastchat/llm_judge/show_result.py display_result_single",
            "rows": [[r["model"], str(r["question_id"]), r["turn"], r["score"]] for r in rows],
            "printed": out.getvalue().replace(str(path), "mt_bench_single.jsonl"),
            "turn_1": [[m, float(v)] for (m, _), v in first["score"].items()],
            "turn_2": [[m, float(v)] for (m, _), v in second["score"].items()],
            "overall": [[m, float(v)] for m, v in avg["score"].items()]}


# ------------------------------------------------------ arena-hard-auto (verbatim, style control out)
def get_battles_from_row(row, first_game_only, multiplier, baseline_model, metadata=None):
    results = []
    output = {"question_id": row["question_id"],
              "model_a": baseline_model,
              "model_b": row["model"]}

    game = row["games"][0]
    weight = 1
    if game["score"] == "A=B":
        output["winner"] = "tie"
    elif game["score"] == "A>B":
        output["winner"] = "model_a"
    elif game["score"] == "A>>B":
        output["winner"] = "model_a"
        weight = multiplier
    elif game["score"] == "B>A":
        output["winner"] = "model_b"
    elif game["score"] == "B>>A":
        output["winner"] = "model_b"
        weight = multiplier
    else:
        weight = 0

    if weight:
        results += [output] * weight

    if first_game_only:
        return results

    # game 2
    output = {"question_id": row["question_id"],
            "model_a": baseline_model,
            "model_b": row["model"]}

    game = row["games"][1]

    weight = 1
    if game["score"] == "A=B":
        output["winner"] = "tie"
    elif game["score"] == "A>B":
        output["winner"] = "model_b"
    elif game["score"] == "A>>B":
        output["winner"] = "model_b"
        weight = multiplier
    elif game["score"] == "B>A":
        output["winner"] = "model_a"
    elif game["score"] == "B>>A":
        output["winner"] = "model_a"
        weight = multiplier
    else:
        weight = 0

    if weight:
        results += [output] * weight

    return results


def compute_mle_elo(df, SCALE=400, BASE=10, INIT_RATING=1000, baseline_model="gpt-4-0314"):
    models = pd.concat([df["model_a"], df["model_b"]]).unique()
    models = pd.Series(np.arange(len(models)), index=models)

    # duplicate battles
    df = pd.concat([df, df], ignore_index=True)
    p = len(models.index)
    n = df.shape[0]

    X = np.zeros([n, p])
    X[np.arange(n), models[df["model_a"]]] = +math.log(BASE)
    X[np.arange(n), models[df["model_b"]]] = -math.log(BASE)

    # one A win => two A win
    Y = np.zeros(n)
    Y[df["winner"] == "model_a"] = 1.0

    # one tie => one A win + one B win
    # find tie + tie (both bad) index
    tie_idx = (df["winner"] == "tie") | (df["winner"] == "tie (bothbad)")
    tie_idx[len(tie_idx)//2:] = False
    Y[tie_idx] = 1.0

    lr = LogisticRegression(fit_intercept=False, penalty=None, tol=1e-8)
    lr.fit(X,Y)

    elo_scores = SCALE * lr.coef_[0] + INIT_RATING

    # set anchor as gpt-4-0314 = 1000
    if baseline_model in models.index:
        elo_scores += 1000 - elo_scores[models[baseline_model]]
    return pd.Series(elo_scores, index=models.index).sort_values(ascending=False)


def get_bootstrap_result(battles, func_compute_elo, num_round, baseline_model="gpt-4-0314"):
    rows = []
    kwargs = {}
    if baseline_model in inspect.signature(func_compute_elo).parameters:
        kwargs[baseline_model] = baseline_model
    for _ in range(num_round):
        rows.append(func_compute_elo(battles.sample(frac=1.0, replace=True), **kwargs))
    df = pd.DataFrame(rows)
    return df[df.median().sort_values(ascending=False).index]


def predict_win_rate(elo_ratings, SCALE=400, BASE=10, INIT_RATING=1000):
    names = sorted(list(elo_ratings.keys()))
    wins = defaultdict(lambda: defaultdict(lambda: 0))
    for a in names:
        for b in names:
            ea = 1 / (1 + BASE ** ((elo_ratings[b] - elo_ratings[a]) / SCALE))
            wins[a][b] = ea
            wins[b][a] = 1 - ea

    data = {
        a: [wins[a][b] if a != b else np.nan for b in names]
        for a in names
    }

    df = pd.DataFrame(data, index=names)
    df.index.name = "model_a"
    df.columns.name = "model_b"
    return df.T


def get_win_rate_column(df, column, baseline="gpt-4-0314"):
    to_dict = df[["model", column]].set_index("model").to_dict()[column]
    win_rate_table = predict_win_rate(to_dict)
    return win_rate_table[baseline].fillna(0.5).apply(lambda x: round(x * 100, 2))


def arena_hard() -> dict:
    baseline = "gpt-4-0314"  # the reference's default: its bootstrap anchors only this name (see tests)
    rng = np.random.default_rng(20)
    # P(label) in the frame "model vs baseline": B>>A (model much better) ... A>>B (baseline much better)
    strength = {"model-strong": 1.2, "model-good": 0.5, "model-even": 0.0, "model-weak": -0.7, "model-poor": -1.5}
    labels_model_first = ["A>>B", "A>B", "A=B", "B>A", "B>>A"]  # game 2: the model is A
    swap = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}
    judgments = []
    for m, s in strength.items():
        cut = np.array([-2.0, -0.7, 0.7, 2.0]) - s  # an ordered logit: where the model's label falls
        for q in range(30):
            games = []
            for _game in (1, 2):
                z = rng.logistic()
                k = 4 - int(np.searchsorted(cut, z))  # 0: A>>B (model much better in game 2's frame)
                label = labels_model_first[k]
                if rng.random() < 0.04:
                    label = None  # an unreadable judgment (no label after both attempts)
                games.append(label)
            # game 1 shows the baseline first: the same judgment in the other frame
            g1 = None if games[0] is None else swap[games[0]]
            judgments.append({"question_id": f"q{q:02d}", "model": m,
                              "games": [{"score": g1}, {"score": games[1]}]})
    battles = pd.DataFrame([b for row in judgments for b in get_battles_from_row(row, False, 3, baseline)])
    np.random.seed(42)  # as utils_math.py seeds at import
    elo = compute_mle_elo(battles, baseline_model=baseline)
    boot = get_bootstrap_result(battles, compute_mle_elo, 1000, baseline)
    stats = pd.DataFrame()
    for i, model in enumerate(elo.index):
        stats.at[i, "model"] = model
        stats.at[i, "score"] = elo[model]
        stats.at[i, "lower"] = np.percentile(boot[model], 2.5)
        stats.at[i, "upper"] = np.percentile(boot[model], 97.5)
    elo_table = stats.copy()
    stats.sort_values(by="model", inplace=True)
    stats["score"] = get_win_rate_column(stats, "score", baseline).tolist()
    stats["lower"] = get_win_rate_column(stats, "lower", baseline).tolist()
    stats["upper"] = get_win_rate_column(stats, "upper", baseline).tolist()
    stats.sort_values(by="score", ascending=False, inplace=True)
    decimal = 1
    printed = []
    for _, row in stats.iterrows():
        interval = str((round(row['lower'] - row['score'], decimal), round(row['upper'] - row['score'], decimal)))
        printed.append(f"{row['model'] : <30} | score: {round(row['score'], decimal) : ^5} | 95% CI: {interval : ^12}")
    # the exact win rate (show_result.py rounds it to 2 decimals) from the same ratings
    exact = {m: 100 / (1 + 10 ** ((elo[baseline] - elo[m]) / 400)) for m in elo.index}
    return {"source": "lm-sys/arena-hard-auto efc012e show_result.py, utils_math.py", "baseline": baseline,
            "judgments": judgments, "battles": len(battles), "elo": {m: float(v) for m, v in elo.items()},
            "elo_interval": {r["model"]: [float(r["lower"]), float(r["upper"])] for _, r in elo_table.iterrows()},
            "score_exact": {m: float(v) for m, v in exact.items()},
            "table": [{"model": r["model"], "score": float(r["score"]), "lower": float(r["lower"]),
                       "upper": float(r["upper"])} for _, r in stats.iterrows()],
            "printed": printed, "bootstrap_rounds": 1000}


# ------------------------------------------------------------------------------------- alpaca_eval
def _featurized(prefs, len_1, len_2, index, difficulty, formula):
    """``_get_featurized_data`` of glm_winrate.py, its download replaced by ``difficulty``."""
    from alpaca_eval.metrics.glm_winrate import make_dmatrix_for_model

    df = pd.DataFrame({"preference": prefs, "index": index})
    std_delta_len = pd.Series(len_1) - pd.Series(len_2)
    df["std_delta_len"] = std_delta_len / std_delta_len.std()
    df["preference"] = df["preference"].astype(float).replace({0.0: 1.5}) - 1
    df["instruction_difficulty"] = df["index"].transform(lambda g: difficulty[g])
    df["not_gamed_baseline"] = True
    df_test = df[["instruction_difficulty", "not_gamed_baseline"]].copy()
    df_test["std_delta_len"] = 0
    return make_dmatrix_for_model(df, df_test, formula=formula)


def _lc(prefs, len_1, len_2, index, difficulty, formula):
    """The length-controlled win rate as ``get_length_controlled_winrate`` predicts it (its own
    L1 cross-validated fit), and the plain maximum-likelihood fit of the same soft labels."""
    from alpaca_eval.metrics.glm_winrate import fit_LogisticRegressionCV

    train, test = _featurized(prefs, len_1, len_2, index, difficulty, formula)
    model = fit_LogisticRegressionCV(train, "preference", is_ytrue_proba=True, n_splits=5)
    cv = float(model.predict_proba(test)[:, 1].mean() * 100)
    X, y = train.drop(columns=["preference"]).to_numpy(), train["preference"].to_numpy()
    mle = LogisticRegression(fit_intercept=False, penalty=None, tol=1e-10, max_iter=10000)
    mle.fit(np.vstack([X, X]), np.r_[np.ones(len(y)), np.zeros(len(y))], sample_weight=np.r_[y, 1 - y])
    return cv, float(mle.predict_proba(test.to_numpy())[:, 1].mean() * 100), dict(zip(test.columns, mle.coef_[0]))


def alpaca_eval() -> dict:
    from alpaca_eval.metrics import pairwise_to_winrate
    from alpaca_eval.metrics.glm_winrate import GLM_INFO

    rng = np.random.default_rng(20)
    n = 200
    difficulty = pd.Series(rng.normal(0, 0.8, 805), index=pd.RangeIndex(805, name="index"),
                           name="instruction_difficulty")
    index = rng.choice(805, size=n, replace=False)
    len_1 = rng.integers(300, 2500, n)  # the baseline's answers (output_1)
    len_2 = (len_1 * rng.lognormal(0.25, 0.4, n)).astype(int)  # the model's: longer on the whole
    logit = 0.2 + 0.9 * np.tanh((len_2 - len_1) / np.std(len_2 - len_1, ddof=1)) - 0.6 * difficulty[index].to_numpy()
    p_model = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.8, n))))
    prefs = 1 + p_model
    prefs[:8] = 1.5  # exact draws
    prefs[8:12] = np.round(prefs[8:12])  # hard verdicts
    prefs = prefs.astype(float)
    wr = pairwise_to_winrate(list(prefs))
    minimal = _lc(prefs, len_1, len_2, index, difficulty, GLM_INFO["length_controlled_minimal"]["formula"])
    full = _lc(prefs, len_1, len_2, index, difficulty, GLM_INFO["length_controlled_noreg"]["formula"])
    diff_csv = difficulty.to_csv(float_format="%.16f")
    (HERE / "instruction_difficulty.csv").write_text(diff_csv)
    return {"source": f"alpaca_eval {__import__('alpaca_eval').__version__} metrics.winrate, metrics.glm_winrate",
            "items": [{"id": int(i), "model_a": "baseline", "model_b": "model", "preference": float(p),
                       "lengths": [int(a), int(b)]} for i, p, a, b in zip(index, prefs, len_1, len_2)],
            "win_rate": float(wr["win_rate"]), "standard_error": float(wr["standard_error"]),
            "discrete_win_rate": float(wr["discrete_win_rate"]), "n_wins": int(wr["n_wins"]),
            "n_wins_base": int(wr["n_wins_base"]), "n_draws": int(wr["n_draws"]), "n_total": int(wr["n_total"]),
            "lc_minimal_alpaca_eval": minimal[0], "lc_minimal_mle": minimal[1], "lc_minimal_mle_coef": minimal[2],
            "lc_full_alpaca_eval": full[0], "lc_full_mle": full[1], "lc_full_mle_coef": full[2],
            "difficulty_file": "instruction_difficulty.csv"}


def main() -> None:
    versions = {"numpy": np.__version__, "pandas": pd.__version__, "scikit-learn": sklearn.__version__}
    for name, make in (("mt_bench", mt_bench), ("arena_hard", arena_hard), ("alpaca_eval", alpaca_eval)):
        data = {**make(), "versions": versions}
        (HERE / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main()
