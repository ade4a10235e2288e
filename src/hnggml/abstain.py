"""Abstention helpers: the "i_dont_know" tool and the push-back check.

Three ways to act on a high hallucination risk:

- ``Llama(..., abstain_above=T)`` replaces the text of a completion, or the
  content of a chat message, with "I don't know." when its risk is at or
  above T.  The report keeps the original as ``original_text``.  A chat
  message that calls a tool is left as it is, because its text is the
  call's arguments, and its report contains ``"abstained": False``.  In a stream
  the text has already been sent, so only the report of the last chunk is
  marked.
- ``create_chat_completion(..., abstain_tool=True)`` offers the tool
  :func:`idk_tool` (added to ``tools``, or as the only tool when none was
  passed).  When the model answers in text although the risk is at or above
  ``abstain_above`` (or, without ``abstain_above``, the flagging threshold),
  the message is replaced by a call to that tool with the reason
  "hallucination risk R above T", and the report gets
  ``"abstained": True`` and ``"abstain_tool_call": True``.  Streams get the
  tool but no replaced message.
- :func:`challenge` asks a question, pushes back once and asks again; an
  answer that changes raises the risk (the rule is in its docstring).

Tool calls are recognised in ``message["tool_calls"]``, in the legacy
``message["function_call"]``, and as a ``<tool_call>`` tag in the content:
Qwen 2.5 and other Hermes-style templates write calls as tagged text, which
llama-cpp-python's generic chat handler leaves in the content.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

from .compliance_prompts import PUSHBACK
from .judge import normalize
from .prompting import CHAT_SUFFIX, PromptStyle, ask, chat_messages, fewshot_prompt

logger = logging.getLogger(__name__)

__all__ = [
    "ABSTAIN_TEXT",
    "IDK_TOOL_NAME",
    "challenge",
    "challenged_risk",
    "finish_chat",
    "has_tool_call",
    "idk_tool",
    "prepare_chat_kwargs",
    "same_answer",
]

ABSTAIN_TEXT = "I don't know."
IDK_TOOL_NAME = "i_dont_know"

# Position of `tools` in llama_cpp.Llama.create_chat_completion(messages,
# functions, function_call, tools, ...).
_TOOLS_POSITION = 3


def idk_tool() -> dict[str, Any]:
    """Return the OpenAI tool definition of "i_dont_know" with one string parameter, "reason"."""
    return {
        "type": "function",
        "function": {
            "name": IDK_TOOL_NAME,
            "description": (
                "Call this instead of answering when you do not know the answer "
                "or your answer is likely to be wrong."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "reason": {"type": "string", "description": "Why no reliable answer can be given."},
                },
                "required": ["reason"],
            },
        },
    }


def prepare_chat_kwargs(args: tuple, kwargs: dict[str, Any]) -> bool:
    """Pop ``abstain_tool`` from ``kwargs`` and, when it is true, add :func:`idk_tool` to ``tools``.

    Returns the popped flag.  ``kwargs`` is changed in place, but a caller's
    ``tools`` list is copied, not extended.
    """
    flag = kwargs.pop("abstain_tool", False)
    if not isinstance(flag, bool):
        raise TypeError(f"abstain_tool must be True or False, got {flag!r}")
    if not flag:
        return False
    if len(args) > _TOOLS_POSITION:
        raise TypeError("with abstain_tool=True pass tools as a keyword argument (tools=[...]), not positionally")
    tools = kwargs.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, (list, tuple)):
        raise TypeError(f"tools must be a list of OpenAI tool dicts, got {type(tools).__name__}")
    names = {(tool.get("function") or {}).get("name") for tool in tools if isinstance(tool, dict)}
    kwargs["tools"] = list(tools) if IDK_TOOL_NAME in names else [*tools, idk_tool()]
    return True


def has_tool_call(message: dict[str, Any]) -> bool:
    """Tell whether a chat message calls a tool (see the module docstring for the forms recognised)."""
    if message.get("tool_calls") or message.get("function_call"):
        return True
    content = message.get("content")
    return isinstance(content, str) and "<tool_call>" in content


def finish_chat(llm: Any, result: dict[str, Any], report: dict[str, Any], abstain_tool: bool) -> None:
    """Apply abstention to a finished chat completion ``result`` in place.

    ``report`` is the completion's hnggml report.  Inside a chat completion
    ``llm.create_completion`` only marks the report ``abstained``, and this
    function decides what the message becomes (see the module docstring).
    """
    choice = result["choices"][0]
    message = choice["message"]
    called = has_tool_call(message)
    risk = report.get("risk")

    if called and report.get("abstained"):
        report["abstained"] = False
        report.pop("original_text", None)

    if abstain_tool and not called and risk is not None:
        limit = llm.abstain_above if llm.abstain_above is not None else report.get("threshold")
        if limit is not None and risk >= limit:
            reason = f"hallucination risk {risk:.2f} above {limit:.2f}"
            report.update(
                abstained=True,
                abstain_tool_call=True,
                original_text=report.get("original_text", message.get("content") or ""),
            )
            message["content"] = None
            message["tool_calls"] = [{
                "id": f"call_{IDK_TOOL_NAME}_{result.get('id', '')}",
                "type": "function",
                "function": {"name": IDK_TOOL_NAME, "arguments": json.dumps({"reason": reason})},
            }]
            message.pop("function_call", None)
            choice["finish_reason"] = "tool_calls"
            return

    if report.get("abstained"):
        message["content"] = ABSTAIN_TEXT
        choice["finish_reason"] = "abstain"


# ---------------------------------------------------------------------------
# Push-back check
# ---------------------------------------------------------------------------


def challenged_risk(risk: float, flipped: bool) -> float:
    """Return the risk after a push-back: a flip halves the distance to 1, ``(1 + risk) / 2``.

    An answer that was kept leaves the risk unchanged.  The rule never lowers
    a risk, keeps it in [0, 1], and ranks flipped answers in the same order as
    before.
    """
    return (1.0 + risk) / 2.0 if flipped else risk


def same_answer(first: str, second: str) -> bool:
    """Tell whether two short answers agree after :func:`hnggml.judge.normalize`.

    They agree when their normalised tokens are equal or one is a
    contiguous part of the other ("Paris" and "Paris, France").  Two empty
    answers agree; an empty and a non-empty one do not.
    """
    a, b = normalize(first).split(), normalize(second).split()
    if not a or not b:
        return not a and not b
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return any(long[i : i + len(short)] == short for i in range(len(long) - len(short) + 1))


def _pushback_prompt(question: str, first: str, style: PromptStyle) -> Any:
    if style.style == "chat":
        return chat_messages(question) + [
            {"role": "assistant", "content": first},
            {"role": "user", "content": f"{PUSHBACK} {question.strip()}{CHAT_SUFFIX}"},
        ]
    return f"{fewshot_prompt(question)} {first}\nQ: {PUSHBACK} {question.strip()}\nA:"


def challenge(llm: Any, question: str, style: PromptStyle | None = None, **kwargs: Any) -> dict[str, Any]:
    """Ask ``question``, push back with a fixed sentence, ask again, and compare.

    ``style`` defaults to the probe's prompt style; ``kwargs`` go to both
    requests (``temperature`` defaults to 0).  The conversation is the first
    prompt, the first answer, then the user turn
    "I don't think that's right. Are you sure?" followed by the question
    again.  ``flipped`` is True when the answers disagree by
    :func:`same_answer`, and then the risk becomes ``(1 + risk) / 2``
    (:func:`challenged_risk`) and ``flagged`` is recomputed.  When the Llama
    has ``abstain_above`` and the raised risk reaches it, the returned text
    becomes "I don't know." as in a plain completion.

    Returns ``{"text", "report", "response", "challenged", "flipped",
    "second_text", "second_report"}``, where "text" and "response" are the
    first answer's.  The report also carries ``challenged``, ``flipped``,
    ``second_text``, ``first_risk`` (the risk before the push-back) and
    ``second_risk`` (the second answer's own risk).
    """
    if style is None:
        style = PromptStyle.from_dict(llm.probe.prompt if llm.probe is not None else None)
    kwargs.setdefault("temperature", 0.0)
    first = ask(llm, question, style, **kwargs)
    first_report = dict(first["report"] or {})
    first_text = first_report.get("original_text", first["text"]).strip()

    params = {"max_tokens": style.max_tokens, "stop": list(style.stop), **kwargs}
    prompt = _pushback_prompt(question, first_text, style)
    if style.style == "chat":
        response = llm.create_chat_completion(messages=prompt, **params)
        second_text = response["choices"][0]["message"].get("content") or ""
    else:
        response = llm.create_completion(prompt, **params)
        second_text = response["choices"][0]["text"]
    second_report = copy.deepcopy(response.get("hnggml") or {})
    second_text = second_report.get("original_text", second_text).strip()

    flipped = not same_answer(first_text, second_text)
    report = first_report
    risk = report.get("risk")
    report.update(challenged=True, flipped=flipped, second_text=second_text,
                  first_risk=risk, second_risk=second_report.get("risk"))
    text = first["text"]
    if risk is not None:
        raised = challenged_risk(risk, flipped)
        report["risk"] = raised
        report["flagged"] = raised >= report["threshold"]
        limit = llm.abstain_above
        if limit is not None and raised >= limit and not report.get("abstained"):
            report.update(abstained=True, original_text=first_text)
            text = ABSTAIN_TEXT
    llm.last_report = report
    logger.debug("challenge: first %r, second %r, flipped=%s", first_text, second_text, flipped)
    return {
        "text": text,
        "report": report,
        "response": first["response"],
        "challenged": True,
        "flipped": flipped,
        "second_text": second_text,
        "second_report": second_report,
    }
