"""`albert serve`'s playground page (GET /) in a real browser: headless Chromium driven by Selenium against a real
server. For a classifier, a tagger, a QA model, an encoder, a multiple-choice and a summarisation model: type,
click, and read what the page shows; it must be what the API answers for the same input. Screenshots are kept in
test-artifacts/ (ignored by git).

Chromium comes from Debian's `chromium` and `chromium-driver` packages; `make test` installs them where it runs as
root with apt-get (CI), elsewhere this module skips and says how to get them."""

from __future__ import annotations

import math
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import TAGS, tiny_config
from servers import Server

pytest.importorskip("fastapi")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is a dev dependency: pip install -e '.[dev]'")

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "no Chromium here: apt-get install chromium chromium-driver (make test does it where it runs as root)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors, CSP violations included
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(models):
    """One server per model kind, started on first use."""
    started: dict[str, Server] = {}

    def get(kind: str) -> Server:
        if kind not in started:
            started[kind] = Server(models[kind])
        return started[kind]

    yield get
    for srv in started.values():
        srv.stop()


def open_page(browser, srv: Server, route: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(srv.url + "/")
    body = browser.find_element(By.TAG_NAME, "body")
    WebDriverWait(browser, 20).until(lambda d: body.get_attribute("data-ready") or d.find_element(By.ID, "error").text)
    assert body.get_attribute("data-ready") == route, browser.find_element(By.ID, "error").text
    return By


def submit(browser, values: dict[str, str], shot: str):
    """Type each field, click Run, wait for the drawn answer; a screenshot goes to test-artifacts/."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    for field, text in values.items():
        box = browser.find_element(By.ID, field)
        box.clear()
        if text.isascii():
            box.send_keys(text)
        else:  # ChromeDriver types only the Basic Multilingual Plane, and composes combining marks: set by script
            browser.execute_script("arguments[0].value = arguments[1]", box, text)
    browser.find_element(By.ID, "run").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.ID, "answer") or d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text == ""
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"playground-{shot}.png"))
    assert (ARTIFACTS / f"playground-{shot}.png").stat().st_size > 5000
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # no script error, nothing the page's Content-Security-Policy had to block


def shown_bars(browser) -> list[tuple[str, float, bool]]:
    """(name, value, highlighted) of each bar the page drew, top to bottom."""
    from selenium.webdriver.common.by import By

    return [
        (
            b.find_element(By.CLASS_NAME, "name").text,
            float(b.find_element(By.CLASS_NAME, "value").text),
            "top" in b.get_attribute("class"),
        )
        for b in browser.find_elements(By.CSS_SELECTOR, ".bar")
    ]


def test_classifier_page_shows_the_label_and_the_probabilities_the_api_gives(browser, served):
    srv = served("clf")
    By = open_page(browser, srv, "predict")
    text = "The jury praised the new county hospital."
    submit(browser, {"text": text}, "classification")
    status, api = srv.post("/predict", {"texts": [text]})
    assert status == 200
    want = api["predictions"][0]
    assert browser.find_element(By.ID, "answer").text == want["label"]
    names, values, top = zip(*shown_bars(browser), strict=True)
    assert dict(zip(names, values, strict=True)) == {label: round(p, 3) for label, p in want["probabilities"].items()}
    assert list(values) == sorted(values, reverse=True) and names[0] == want["label"]
    assert list(top) == [True] + [False] * (len(names) - 1)


def test_tagger_page_marks_the_entities_the_api_finds(browser, served):
    srv = served("ner")
    By = open_page(browser, srv, "ner")
    text = "Mr. Brown met the Fulton County jury in Atlanta on Friday."
    submit(browser, {"text": text}, "ner")
    entities = srv.post("/ner", {"texts": [text]})[1]["entities"][0]
    assert entities, "the fixture's random tagger finds entities in this text"
    marks = browser.find_elements(By.CSS_SELECTOR, "#result mark")
    assert browser.find_element(By.ID, "answer").text == f"{len(entities)} entit{'ies' if len(entities) > 1 else 'y'}"
    assert [(m.get_attribute("data-type"), m.get_attribute("textContent")) for m in marks] == [
        (e["type"], e["text"]) for e in entities
    ]
    # the whole text is still there, in order, around the marks
    assert browser.find_element(By.CSS_SELECTOR, "#result .text").get_attribute("textContent").startswith("Mr.")


def test_qa_page_marks_the_answer_in_the_context(browser, served):
    srv = served("qa")
    By = open_page(browser, srv, "qa")
    question, context = "Who met the jury?", "Mr. Brown met the Fulton County jury in Atlanta on Friday."
    submit(browser, {"question": question, "context": context}, "qa")
    answer = srv.post("/qa", {"items": [{"question": question, "context": context}]})[1]["answers"][0]
    assert answer["answer"], "the fixture's random QA model answers this question"
    marks = browser.find_elements(By.CSS_SELECTOR, "#result mark")
    assert len(marks) == 1 and marks[0].get_attribute("textContent") == answer["answer"]
    assert context[answer["start"] : answer["end"]] == answer["answer"]
    assert browser.find_element(By.ID, "answer").text.startswith(f"answer: {answer['answer']} (score")


# ----------------------------------------------------------------------------------------------------------------
# Offsets are code points (Python str indices) in the API and in the page, whose JavaScript strings are UTF-16: an
# emoji (one code point, two UTF-16 units) before a span must not shift its mark.
# ----------------------------------------------------------------------------------------------------------------
def keyword_model(head, tokenizer, directory, rows: list[tuple[str, ...]], default: int | None, **config):
    """A model whose output k fires on the pieces rows[k] wherever they stand, and output ``default`` on every other
    piece (None: no output). Attention and feed-forward add nothing (zero output weights), positions and segments
    embed to zero, so a position's last hidden vector depends on its own piece alone; output row k is that vector
    for the pieces of rows[k] (all hidden vectors have the same norm, so row k is largest exactly there)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = head(tiny_config(vocab_size=tokenizer.vocab_size, max_position_embeddings=128, **config)).eval()
    ids = [tokenizer.convert_tokens_to_ids(list(pieces)) for pieces in rows]
    assert tokenizer.unk_token_id not in sum(ids, []), f"a piece of {rows} is not in the vocabulary"
    with torch.no_grad():
        for name, p in model.albert.named_parameters():
            if "norm." in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.startswith(("embeddings.position", "embeddings.token_type")) or "_out." in name:
                p.zero_()
        word = model.albert.embeddings.word.weight
        prototypes = torch.randn(len(rows) + 1, word.shape[1])
        word[:] = prototypes[len(rows) if default is None else default]
        for k, row in enumerate(ids):
            word[row] = prototypes[k]
        hidden = model.albert(torch.tensor([[row[0] for row in ids]])).last_hidden_state[0]
        out = model.qa_outputs if hasattr(model, "qa_outputs") else model.classifier
        out.weight.copy_(hidden)
        out.bias.zero_()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def keyword_served(brown_tokenizer, tmp_path_factory):
    """Servers of a tagger and a QA model that mark known words wherever they stand: Smith, Brown (B-PER), Jones
    (I-PER), Atlanta, Café (B-LOC), London (I-LOC), and per character in text with CJK characters J (B-PER), K (I-PER),
    W (B-LOC); the QA model answers from Smith to Atlanta."""
    from albert.heads import AlbertForQuestionAnswering, AlbertForTokenClassification

    root = tmp_path_factory.mktemp("keyword")
    rows = {"O": ("▁the",), "B-PER": ("▁smith", "▁brown", "▁j"), "I-PER": ("▁jones", "▁k")}
    rows |= {"B-LOC": ("▁atlanta", "▁cafe", "▁w"), "I-LOC": ("▁london",)}
    ner = [rows[TAGS[k]] for k in range(len(TAGS))]
    qa = [("▁smith",), ("▁atlanta",)]
    started = {
        "ner": Server(keyword_model(AlbertForTokenClassification, brown_tokenizer, root / "n", ner, 0, id2label=TAGS)),
        "qa": Server(keyword_model(AlbertForQuestionAnswering, brown_tokenizer, root / "q", qa, None)),
    }
    yield started
    for srv in started.values():
        srv.stop()


def astral_before(text: str, at: int) -> bool:
    return any(ord(c) > 0xFFFF for c in text[:at])


NER_TEXTS = [
    "🙂 Mr. Smith Jones met 🙂🙂 the Cafe\u0301 jury in Atlanta London e\u0301 on Friday, Brown 🙂 e\u0301 Brown Jones",
    "🙂 布朗 JK 先生 🙂 W 京e\u0301 W 🙂🙂 J",  # CJK: tagged per character
]
QA_ITEMS = [
    ("Who met the jury?", "🙂 e\u0301 東京 Mr. Smith 🙂 met the Fulton County jury in Atlanta on Friday."),
    ("Who was there?", "Mr. 🙂🙂 Cafe\u0301 布朗 🙂 Smith, e\u0301 of Atlanta 🙂 on Friday."),
]


def test_tagger_page_marks_entities_at_code_point_offsets(browser, keyword_served):
    srv = keyword_served["ner"]
    By = open_page(browser, srv, "ner")
    for n, text in enumerate(NER_TEXTS):
        submit(browser, {"text": text}, f"ner-code-points-{n}")
        entities = srv.post("/ner", {"texts": [text]})[1]["entities"][0]
        assert len(entities) >= 3 and all(astral_before(text, e["start"]) for e in entities[1:])
        assert [e["text"] for e in entities] == [text[e["start"] : e["end"]] for e in entities]
        marks = browser.find_elements(By.CSS_SELECTOR, "#result mark")
        assert [(m.get_attribute("data-type"), m.get_attribute("textContent")) for m in marks] == [
            (e["type"], text[e["start"] : e["end"]]) for e in entities
        ]
        assert browser.find_element(By.CSS_SELECTOR, "#result .text").get_attribute("textContent") == text


def test_qa_page_marks_the_answer_at_code_point_offsets(browser, keyword_served):
    srv = keyword_served["qa"]
    By = open_page(browser, srv, "qa")
    for n, (question, context) in enumerate(QA_ITEMS):
        submit(browser, {"question": question, "context": context}, f"qa-code-points-{n}")
        answer = srv.post("/qa", {"items": [{"question": question, "context": context}]})[1]["answers"][0]
        assert answer["answer"].startswith("Smith") and answer["answer"].endswith("Atlanta")
        assert astral_before(context, answer["start"]) and context[answer["start"] : answer["end"]] == answer["answer"]
        marks = browser.find_elements(By.CSS_SELECTOR, "#result mark")
        assert [m.get_attribute("textContent") for m in marks] == [answer["answer"]]
        assert browser.find_element(By.CSS_SELECTOR, "#result .text").get_attribute("textContent") == context


def test_the_api_gives_code_point_offsets_around_emoji_cjk_and_combining_marks(served):
    """The fixture's random models (their spans fall where they fall): text[start:end] is what the API says."""
    texts = [*NER_TEXTS, "🙂🙂 Cafe\u0301 東京 Mr. Brown 🙂 met the Fulton County jury in Atlanta on Friday."]
    for text, entities in zip(texts, served("ner").post("/ner", {"texts": texts})[1]["entities"], strict=True):
        assert entities and all(text[e["start"] : e["end"]] == e["text"] for e in entities)
    items = [{"question": q, "context": c} for q, c in QA_ITEMS] + [
        {"question": "Who met the jury?", "context": c} for c in texts
    ]
    for item, answer in zip(items, served("qa").post("/qa", {"items": items})[1]["answers"], strict=True):
        context = item["context"]
        if answer["answer"]:
            assert context[answer["start"] : answer["end"]] == answer["answer"], (context, answer)
        else:
            assert answer["start"] == answer["end"] == -1, (context, answer)


def test_encoder_page_ranks_texts_by_cosine_similarity(browser, served):
    srv = served("encoder")
    By = open_page(browser, srv, "embed")
    query, texts = "the county jury", ["a jury in the county", "rain fell all day", "the stock market rose"]
    submit(browser, {"query": query, "texts": "\n".join(texts)}, "embed")
    vectors = srv.post("/embed", {"texts": [query, *texts]})[1]["embeddings"]

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))

    ranked = sorted(texts, key=lambda t: -cosine(vectors[0], vectors[1 + texts.index(t)]))
    assert [name for name, _, _ in shown_bars(browser)] == ranked
    assert browser.find_element(By.ID, "answer").text == f"nearest: {ranked[0]}"


def test_fill_mask_page_shows_each_candidate_and_the_best_sequence(browser, served):
    srv = served("mlm")
    By = open_page(browser, srv, "fill-mask")
    text = "The jury said the [MASK] was fair."
    submit(browser, {"text": text}, "fill-mask")
    fills = srv.post("/fill-mask", {"texts": [text]})[1]["fills"][0]
    assert shown_bars(browser) == [(f["token_str"], round(f["score"], 3), i == 0) for i, f in enumerate(fills)]
    assert browser.find_element(By.ID, "answer").text == f"best: {fills[0]['sequence']}"


def test_multiple_choice_page_shows_each_option_and_the_choice(browser, served):
    srv = served("mc")
    By = open_page(browser, srv, "choose")
    item = {"passage": "The jury met on Friday.", "question": "When did the jury meet?", "options": ["Friday", "May"]}
    submit(browser, {**item, "options": "\n".join(item["options"])}, "choose")
    choice = srv.post("/choose", {"items": [item]})[1]["choices"][0]
    assert shown_bars(browser) == [
        (option, round(p, 3), i == choice["choice"])
        for i, (option, p) in enumerate(zip(item["options"], choice["probabilities"], strict=True))
    ]
    assert browser.find_element(By.ID, "answer").text == f"chosen: {choice['answer']}"


def test_summary_page_shows_the_chosen_sentences(browser, served):
    srv = served("summ")
    By = open_page(browser, srv, "summarize")
    text = "The jury met on Friday. It praised the city. The mayor was pleased. Rain fell all day."
    submit(browser, {"text": text}, "summarize")
    summary = srv.post("/summarize", {"texts": [text]})[1]["summaries"][0]
    assert summary["summary"] and browser.find_element(By.CSS_SELECTOR, "#answer .text").text == summary["summary"]


def test_an_api_error_is_shown_on_the_page(browser, served):
    srv = served("clf")
    By = open_page(browser, srv, "predict")
    browser.execute_script("document.getElementById('text').value = 'y'.repeat(30000)")  # over --max-text-chars
    browser.find_element(By.ID, "run").click()
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "error").text)
    assert browser.find_element(By.ID, "error").text.startswith("422: invalid request: texts.0")


def test_the_page_is_self_contained_and_can_be_switched_off(served, models):
    srv = served("clf")
    with urllib.request.urlopen(srv.url + "/", timeout=30) as resp:
        page = resp.read().decode()
        policy = resp.headers["Content-Security-Policy"]
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere
    off = Server(models["clf"], "--no-playground")
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(off.url + "/", timeout=30)
        assert err.value.code == 404
    finally:
        off.stop()
