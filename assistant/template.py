"""Chat templates from GGUF files, rendered under a budget: a model file's template is untrusted code.

A chat template is a Jinja program written by whoever made the file. Jinja's sandbox stops it from
reaching Python internals, but not from running forever (``{% for a in range(100000) %}{% for b in
range(100000) %}``), allocating gigabytes (``{{ 'x' * 10**10 }}``) or recursing until Python gives up. So:

* **time**: each render runs in its own short-lived daemon thread; the caller waits at most
  ``TIME_BUDGET_S`` (or until its cancel token is set), then raises an exception inside the render thread
  (``PyThreadState_SetAsyncExc``, honoured at the next bytecode: template loops are Python loops) and moves
  on. The waiting thread (the llama thread) is never held longer than the budget, and nothing joins the
  render thread at exit;
* **size**: the operators that can multiply a size in one C call (``*``, ``**``, ``+``, ``%``, ``~``), the
  filters, and method calls are checked *before* they run against ``Budget.chars`` (a generous multiple of
  the conversation's own size), and every ``{{ output }}`` is counted, so a template cannot make more text
  than that in total;
* **recursion**: ``RecursionError`` (a macro calling itself) becomes the same kind of one-line error.

Every failure is an ``AssistantError`` that names the model's chat template as the cause, never the user's
message. The added cost for an ordinary template is one thread start per render: SmolLM2's template,
4 messages, rendered in 27 us by plain jinja and 232 us here (median, paired, on a loaded 2-core machine).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from jinja2.compiler import CodeGenerator, Frame
from jinja2.ext import loopcontrols
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .chat import CancelToken, Message
from .errors import AssistantError, Cancelled, one_line

log = logging.getLogger(__name__)

# A real chat template renders in well under a millisecond; this is room for a slow machine under load.
TIME_BUDGET_S = 2.0
# Output allowed: this floor, plus OUTPUT_PER_INPUT characters for each character of the conversation
# (templates add role tags and separators, never more than a few times the text they wrap).
MIN_OUTPUT_CHARS = 1_000_000
OUTPUT_PER_INPUT = 8
# Integers past this many bits (``2 ** 10 ** 9``, repeated squaring) take seconds in one C call.
MAX_INT_BITS = 4096
# After the budget runs out, how long to wait for the render thread to stop before leaving it behind.
STOP_GRACE_S = 0.5
_POLL_S = 0.05
# A width or precision of 7+ digits in a format string (``'%999999999s'``) allocates that much at once.
_HUGE_FORMAT_WIDTH = re.compile(r"\d{7,}")

HINT = "the model file's chat template is at fault, not your message: use another model"


class TemplateBudgetError(Exception):
    """Raised inside a render that went over its budget (``what`` says which)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _Timeout(BaseException):
    """Delivered asynchronously into a render thread past its deadline (BaseException: templates cannot
    catch it, and jinja's own ``except Exception`` blocks do not swallow it)."""


class Budget:
    """What one render may produce: ``chars`` characters in all, no single value larger."""

    def __init__(self, chars: int) -> None:
        self.chars = chars
        self.produced = 0

    def size(self, n: int) -> None:
        if n > self.chars:
            raise TemplateBudgetError(f"tried to make a value of {n:,} characters (the limit is {self.chars:,})")

    def output(self, n: int) -> None:
        self.produced += n
        if self.produced > self.chars:
            raise TemplateBudgetError(f"wrote more than {self.chars:,} characters")


_local = threading.local()


def _budget() -> Budget | None:
    return getattr(_local, "budget", None)


def _length(value: Any) -> int:
    try:
        return len(value) if isinstance(value, str | bytes | list | tuple | dict) else 0
    except TypeError:
        return 0


def _check_int(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        budget = _budget()
        if budget is not None and abs(value) > budget.chars:
            raise TemplateBudgetError(f"used the number {value:,} as a size or count")


def _check_binop(budget: Budget, operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            if isinstance(count, int) and _length(seq):
                budget.size(_length(seq) * max(count, 0))
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateBudgetError("multiplied numbers too large to compute")
    elif operator == "**":
        base_bits = left.bit_length() if isinstance(left, int) else 0
        if isinstance(right, int) and base_bits > 1 and right * base_bits > MAX_INT_BITS:
            raise TemplateBudgetError("raised a number to a power too large to compute")
    elif operator == "+":
        budget.size(_length(left) + _length(right))
    elif operator == "%" and isinstance(left, str) and _HUGE_FORMAT_WIDTH.search(left):
        raise TemplateBudgetError("used a format width too large to allocate")


def _check_call(budget: Budget, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for value in (*args, *kwargs.values()):
        _check_int(value)
        if isinstance(value, str) and _HUGE_FORMAT_WIDTH.search(value) and "{" in value:
            raise TemplateBudgetError("used a format width too large to allocate")
    name = getattr(obj, "__name__", "")
    owner = getattr(obj, "__self__", None)
    if (
        name in ("replace", "do_replace") and len(args) >= 2
    ):  # str.replace / the replace filter: '' inserts between every char
        text = owner if isinstance(owner, str) else args[0]
        old, new = (args[0], args[1]) if isinstance(owner, str) else (args[1], args[2] if len(args) > 2 else "")
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
            pieces = len(text) + 1 if not old else len(text) // len(old)
            budget.size(len(text) + pieces * len(new))
    elif name == "format" and isinstance(owner, str) and _HUGE_FORMAT_WIDTH.search(owner):
        raise TemplateBudgetError("used a format width too large to allocate")


def _guard_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps jinja's pass_context / pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        if budget is not None:
            _check_call(budget, fn, args[1:] if getattr(fn, "jinja_pass_arg", None) else args, kwargs)
        result = fn(*args, **kwargs)
        if budget is not None:
            budget.size(_length(result))
        return result

    return guarded


class _CodeGenerator(CodeGenerator):
    """``a ~ b`` (jinja's string concatenation) goes through ``environment.concat`` so it can be measured."""

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with every size-multiplying operation checked against the render's budget."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = {name: _guard_filter(fn) for name, fn in self.filters.items()}
        self.finalize = _count_output

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        if budget is not None:
            _check_binop(budget, operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        if budget is not None:
            _check_call(budget, __obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if budget is not None:
            budget.size(_length(result))
        return result

    @staticmethod
    def checked_concat(parts: tuple[Any, ...]) -> str:
        texts = [str(p) for p in parts]
        budget = _budget()
        if budget is not None:
            budget.size(sum(map(len, texts)))
        return "".join(texts)


def _count_output(value: Any) -> Any:
    budget = _budget()
    if budget is not None:
        budget.output(len(value) if isinstance(value, str) else len(str(value)))
    return value


def compile_template(source: str, globals: dict[str, Any]) -> Any:
    """Compile ``source`` in the sandbox. Raises jinja2's ``TemplateError`` on a syntax error (also for
    one nested too deeply for the parser)."""
    from jinja2 import TemplateSyntaxError

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals.update(globals)
    # jinja folds constant filter calls while compiling ({{ 'x'|center(10**10) }}): budget those too
    _local.budget = Budget(MIN_OUTPUT_CHARS)
    try:
        return env.from_string(source)
    except RecursionError:
        raise TemplateSyntaxError("nested too deeply", 1) from None
    finally:
        _local.budget = None


def render(
    template: Any,
    variables: dict[str, Any],
    *,
    model_id: str,
    input_chars: int,
    cancel: CancelToken | None = None,
    time_budget: float = TIME_BUDGET_S,
) -> str:
    """Render ``template`` with ``variables`` in a budgeted thread; see the module docstring.

    ``input_chars`` (the conversation's size) sets the output budget. Raises ``AssistantError`` naming the
    model's template, ``Cancelled`` if ``cancel`` is set first, and re-raises the template's own
    ``AssistantError`` (``raise_exception``) and jinja ``TemplateError``s for the caller to word.
    """
    budget = Budget(MIN_OUTPUT_CHARS + OUTPUT_PER_INPUT * input_chars)
    outcome: list[Any] = []
    done = threading.Event()

    def attempt() -> None:
        _local.budget = budget
        try:
            outcome.append(("ok", str(template.render(**variables))))
        except BaseException as exc:  # handed to the waiting thread, which words it
            outcome.append(("error", exc))
        finally:
            _local.budget = None
            done.set()

    def run() -> None:
        try:
            attempt()
        except BaseException:  # a late _Timeout landing after the render ended: nothing to do
            pass

    worker = threading.Thread(target=run, name="chat-template", daemon=True)
    worker.start()
    deadline = time.monotonic() + time_budget
    while not done.wait(min(_POLL_S, max(0.0, deadline - time.monotonic()))):
        if (cancel is not None and cancel.cancelled) or time.monotonic() >= deadline:
            _interrupt(worker, _Timeout)
            if done.wait(STOP_GRACE_S):
                _interrupt(worker, None)  # it ended on its own: take back a _Timeout not delivered yet
            if cancel is not None and cancel.cancelled:
                raise Cancelled("stopped while the chat template was rendering")
            raise AssistantError(
                f"{model_id}: the model's chat template ran for over {time_budget:g} s without finishing"
                " (a loop that never ends?)",
                HINT,
            )
    kind, value = outcome[0]
    if kind == "ok":
        return str(value)
    raise _worded(value, model_id)


def _worded(exc: BaseException, model_id: str) -> BaseException:
    if isinstance(exc, TemplateBudgetError):
        return AssistantError(f"{model_id}: the model's chat template {exc.what}", HINT)
    if isinstance(exc, RecursionError):
        return AssistantError(f"{model_id}: the model's chat template recursed without end", HINT)
    if isinstance(exc, MemoryError):
        return AssistantError(f"{model_id}: the model's chat template ran out of memory", HINT)
    if isinstance(exc, Exception):
        return exc  # raise_exception's refusal, a TemplateError: the caller words these
    return AssistantError(f"{model_id}: the model's chat template failed: {type(exc).__name__}", HINT)


def _interrupt(thread: threading.Thread, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in ``thread`` at its next bytecode (inside one long C call: when it returns); ``None``
    cancels a pending one."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(exc) if exc is not None else None
        )


def compile_chat_template(source: str, model_id: str) -> tuple[Any, str | None]:
    """``(template, None)``, or ``(None, why)`` when it does not compile (the model runs in completion mode)."""
    from jinja2 import TemplateError

    def raise_exception(message: str) -> None:
        raise AssistantError(f"{model_id}: the model's chat template refused the conversation: {message}")

    globals_ = {"raise_exception": raise_exception, "strftime_now": lambda fmt: time.strftime(fmt)}
    try:
        return compile_template(source, globals_), None
    except TemplateError as exc:
        log.warning("%s: unusable chat template (%s); using completion mode", model_id, exc)
        return None, one_line(exc)


def chat_prompt(
    compiled: Any,
    messages: list[Message],
    bos_token: str,
    eos_token: str,
    *,
    model_id: str,
    cancel: CancelToken | None = None,
) -> str:
    """The model's template applied to ``messages`` (Hugging Face's variables), under the budget."""
    from jinja2 import TemplateError

    variables = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "add_generation_prompt": True,
        "bos_token": bos_token,
        "eos_token": eos_token,
    }
    size = sum(len(m.content) for m in messages)
    try:
        return render(compiled, variables, model_id=model_id, input_chars=size, cancel=cancel)
    except TemplateError as exc:
        raise AssistantError(f"{model_id}: the model's chat template failed: {one_line(exc)}", HINT) from None


def load_llama(path: str, **kwargs: Any) -> Any:
    """``llama_cpp.Llama(path, **kwargs)`` without its own template compilation (see ``_NotUsed``)."""
    import llama_cpp

    with _not_compiled_by_llama_cpp():
        return llama_cpp.Llama(path, **kwargs)


class _NotUsed:
    """Stands in for llama-cpp-python's ``Jinja2ChatFormatter`` while a model loads (see below)."""

    def __init__(self, **kwargs: Any) -> None:
        pass

    def to_chat_handler(self) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("chat templates are rendered by assistant.template, not create_chat_completion")

        return refuse


@contextlib.contextmanager
def _not_compiled_by_llama_cpp() -> Iterator[None]:
    """While ``llama_cpp.Llama`` loads a file, keep it from compiling the file's chat templates itself.

    ``Llama()`` builds a jinja formatter for every ``tokenizer.chat_template*`` key, unbudgeted, and a
    template with a syntax error makes the whole load fail. We render templates here and never call its
    ``create_chat_completion``. Used on the llama thread only, which is the only one that loads models.
    """
    from llama_cpp import llama_chat_format

    original = llama_chat_format.Jinja2ChatFormatter
    llama_chat_format.Jinja2ChatFormatter = _NotUsed  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        llama_chat_format.Jinja2ChatFormatter = original  # type: ignore[misc]
