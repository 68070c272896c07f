"""Reference ids from transformers 4.57.6's slow tokenizers, run in the separate .venv-hf4 (see the Makefile).

transformers 4.x's sentencepiece-based AlbertTokenizer implements google-research/albert's tokenization.py exactly;
its BertTokenizer is the pure-Python WordPiece reference. Reads a JSON request on stdin, writes the ids and
the seconds the batch call took.
"""

import json
import sys
import time

from transformers import AlbertTokenizer, BertTokenizer

request = json.load(sys.stdin)
if request["kind"] == "albert":
    tok = AlbertTokenizer(
        request["path"],
        do_lower_case=request.get("do_lower_case", True),
        keep_accents=request.get("keep_accents", False),
    )
else:
    tok = BertTokenizer(request["path"], do_lower_case=request.get("do_lower_case", True))
kwargs = {"add_special_tokens": request.get("add_special_tokens", True)}
if request.get("max_length"):
    kwargs |= {"max_length": request["max_length"], "truncation": request.get("truncation", True)}
start = time.perf_counter()
ids = tok(request["texts"], request.get("pairs"), **kwargs)["input_ids"]
json.dump({"ids": ids, "seconds": time.perf_counter() - start}, sys.stdout)
