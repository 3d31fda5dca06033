"""The headline detail's "why" and "correct it" panels: the driving words highlighted (as escaped HTML, so
the text stays text) and a form that records an analyst's correction in the ``feedback`` table."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboards import ui
from monitor.explain import Explanation, HeadExplanation, explain
from monitor.feedback import Correction, FeedbackError, record_correction
from monitor.labels import SENTIMENTS, TOPICS
from monitor.settings import ModelSettings

HIGHLIGHT = {"negative": "214,39,40", "neutral": "120,120,120", "positive": "44,160,44"}
TOPIC_HIGHLIGHT = "31,119,180"


def highlighted_html(head: HeadExplanation, text: str, k: int = 3) -> str:
    """``text`` as escaped HTML with the top ``k`` words of ``head`` in <mark> (opacity by weight)."""
    top = {w.start: w for w in head.top(k)}
    strongest = max((w.weight for w in top.values()), default=1.0) or 1.0
    rgb = HIGHLIGHT.get(head.label, TOPIC_HIGHLIGHT) if head.head == "sentiment" else TOPIC_HIGHLIGHT
    out, last = [], 0
    for start in sorted(top):
        w = top[start]
        alpha = 0.25 + 0.55 * w.weight / strongest
        out.append(html.escape(text[last:start]))
        out.append(
            f'<mark class="finpulse-why" title="{w.weight:+.3f}" '
            f'style="background: rgba({rgb},{alpha:.2f}); padding: 0 2px; border-radius: 3px">'
            f"{html.escape(text[start : w.end])}</mark>"
        )
        last = w.end
    out.append(html.escape(text[last:]))
    return "".join(out)


@st.cache_resource(show_spinner="Loading the model for explanations…", max_entries=2)
def classifier_for(model_json: str) -> Any:
    from monitor.classify import load_classifier

    return load_classifier(ModelSettings.model_validate_json(model_json))


@st.cache_data(max_entries=256, show_spinner=False)
def explanation_of(model_json: str, text: str) -> Explanation:
    return explain(classifier_for(model_json), [text])[0]


def show_explanation(ctx: ui.Context, title: str) -> None:
    """The title twice, once per head, with the words that drove the current model's tag highlighted."""
    st.markdown("**Why these tags** — the words whose removal lowers the tag's probability the most")
    try:
        e = explanation_of(ctx.settings.model.model_dump_json(), title)
    except Exception as exc:  # noqa: BLE001 - no model here: the rest of the page still works
        st.caption(ui.literal(f"Explanation unavailable: the model did not load ({type(exc).__name__})."))
        return
    for head in (e.sentiment, e.topic):
        words = ", ".join(f"{w.word} {w.weight:+.2f}" for w in head.top(3)) or "no single word"
        st.html(
            f'<div class="finpulse-explain" data-head="{head.head}">'
            f"<b>{head.head}: {html.escape(head.label)}</b> ({head.confidence:.0%}) · "
            f"{highlighted_html(head, e.text)}"
            f'<div style="color: #666; font-size: 0.85em">{html.escape(words)}</div></div>'
        )
    st.caption(
        "Computed on demand with the current model; a weight is the fall of the tag's probability "
        "when that word is left out."
    )


def correction_form(ctx: ui.Context, item: Any) -> None:
    """Mark a tag wrong: pick the right sentiment and/or topic; stored as feedback, tags left as they are."""
    with st.form(f"correct-{item['id']}", clear_on_submit=False):
        st.markdown("**Correct the tags**")
        name = st.text_input("Your name", value=st.session_state.get("analyst_name", ""), key="analyst_input")
        left, right = st.columns(2)
        sentiment = left.radio(
            "Right sentiment", SENTIMENTS, index=_index(SENTIMENTS, item["sentiment"]), horizontal=True,
            key=f"fix_sentiment-{item['id']}",
        )  # fmt: skip
        topic = right.selectbox(
            "Right topic", TOPICS, index=_index(TOPICS, item["topic"]), key=f"fix_topic-{item['id']}"
        )
        submitted = st.form_submit_button("Save correction")
    if not submitted:
        return
    st.session_state["analyst_name"] = name.strip()
    correction = Correction(str(item["id"]), name, sentiment, topic)
    try:
        with ui.engine_for(ctx.url).begin() as conn:
            record_correction(conn, correction, datetime.now(UTC))
    except FeedbackError as exc:
        st.warning(ui.literal(str(exc)))
        return
    ui.forget_cached_queries()  # the tables show "corrected" at once
    st.session_state["correction_saved"] = str(item["id"])
    st.rerun()


def _index(labels: tuple[str, ...], label: object) -> int:
    """The stored label's position (a label outside today's taxonomy starts at the first choice)."""
    return labels.index(label) if label in labels else 0  # type: ignore[arg-type]


def saved_note(item_id: str) -> None:
    """Confirm a correction saved by the previous run of the page."""
    if st.session_state.pop("correction_saved", None) == item_id:
        st.success(
            "Correction saved. The stored tags are unchanged; `finpulse feedback export` trains on it."
        )
