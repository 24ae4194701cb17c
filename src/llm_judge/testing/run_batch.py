"""An offline engine's batch run, for tests: answers a request file line by line through a live
OpenAI-compatible server and writes the output file as vLLM's ``run_batch`` does.

    python -m llm_judge.testing.run_batch -i requests.jsonl -o requests.output.jsonl --url http://127.0.0.1:PORT/v1
"""

from __future__ import annotations

import argparse
import json
import secrets

import httpx


def answer_file(source: str, target: str, url: str) -> int:
    """Answer every request of ``source`` into ``target``; returns how many lines were written."""
    out = []
    with open(source, encoding="utf-8") as f, httpx.Client(timeout=60) as client:
        for line in filter(str.strip, f):
            request = json.loads(line)
            resp = client.post(url.rstrip("/") + request["url"].removeprefix("/v1"), json=request["body"])
            try:
                body = resp.json()
            except ValueError:
                body = {"error": {"message": resp.text[:200]}}
            out.append({"id": f"vllm-{secrets.token_hex(8)}", "custom_id": request["custom_id"],
                        "response": {"status_code": resp.status_code, "request_id": f"vllm-batch-{secrets.token_hex(8)}",
                                     "body": body}, "error": None})
    with open(target, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(o) + "\n" for o in out)
    return len(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-i", "--input", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--url", required=True, help="the live server's API root, e.g. http://127.0.0.1:8000/v1")
    args = ap.parse_args(argv)
    print(f"{answer_file(args.input, args.output, args.url)} answers written to {args.output}")


if __name__ == "__main__":
    main()
