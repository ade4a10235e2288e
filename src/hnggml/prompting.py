"""Prompts for short factual answers, shared by training, evaluation and `hnggml ask`.

A probe stores the prompt style it was trained with, because CETT features
depend on the context the answer is generated in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Style = Literal["fewshot", "chat"]

FEWSHOT_HEADER = (
    "Answer each question with a short answer.\n\n"
    "Q: How many legs does a spider have?\nA: Eight\n\n"
    "Q: Which gas do plants absorb from the air?\nA: Carbon dioxide\n\n"
    "Q: Who painted the ceiling of the Sistine Chapel?\nA: Michelangelo\n\n"
    "Q: What is the largest ocean on Earth?\nA: The Pacific Ocean\n\n"
    "Q: In which country is the city of Kyoto?\nA: Japan\n\n"
)
"""Worked examples for base models. No training question may repeat them."""

FEWSHOT_QUESTIONS = (
    "How many legs does a spider have?",
    "Which gas do plants absorb from the air?",
    "Who painted the ceiling of the Sistine Chapel?",
    "What is the largest ocean on Earth?",
    "In which country is the city of Kyoto?",
)

CHAT_SUFFIX = " Respond with the answer only, without any explanation."


@dataclass(frozen=True)
class PromptStyle:
    """How questions are put to a model."""

    style: Style = "fewshot"
    max_tokens: int = 24
    stop: tuple[str, ...] = field(default=("\n",))

    def to_dict(self) -> dict[str, Any]:
        return {"style": self.style, "max_tokens": self.max_tokens, "stop": list(self.stop)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "PromptStyle":
        data = data or {}
        style = data.get("style", "fewshot")
        if style not in ("fewshot", "chat"):
            raise ValueError(f"invalid prompt style {style!r}; use 'fewshot' or 'chat'")
        return cls(style=style, max_tokens=int(data.get("max_tokens", 24)), stop=tuple(data.get("stop", ("\n",))))


def default_style(architecture: str, has_chat_template: bool) -> PromptStyle:
    """Few-shot completion for base models, a chat turn for chat models."""
    if has_chat_template and architecture not in ("gemma3",):
        return PromptStyle(style="chat", max_tokens=24, stop=("\n",))
    return PromptStyle()


def fewshot_prompt(question: str) -> str:
    return f"{FEWSHOT_HEADER}Q: {question.strip()}\nA:"


def chat_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question.strip() + CHAT_SUFFIX}]


def ask(llm, question: str, style: PromptStyle, **kwargs: Any) -> dict[str, Any]:
    """Ask one question and return {"text", "hnggml" report, "response"}."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    params = {"max_tokens": style.max_tokens, "stop": list(style.stop), **kwargs}
    if style.style == "chat":
        response = llm.create_chat_completion(messages=chat_messages(question), **params)
        text = response["choices"][0]["message"].get("content") or ""
    else:
        response = llm.create_completion(fewshot_prompt(question), **params)
        text = response["choices"][0]["text"]
    return {"text": text.strip(), "report": response.get("hnggml"), "response": response}
