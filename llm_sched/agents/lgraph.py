"""LangGraph helpers: compile a graph shape once, bind the object that runs it per call.

Compiling a ``StateGraph`` costs about a quarter of a second, far more than running one decision,
so agents and the consensus graph share one compiled graph per class. Nodes and routes delegate to
methods of the owner passed in ``config["configurable"]["owner"]``.
"""

# No ``from __future__ import annotations`` here: LangGraph passes ``config`` to a node or route only
# when it sees the parameter annotated as ``RunnableConfig`` at runtime.
import inspect
from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig

OWNER = "owner"


def delegate(method: str) -> Callable[..., Any]:
    """A node that calls ``owner.<method>(state)`` (sync or async).

    An owner with a ``node_result(update)`` method sees every node's update before LangGraph does
    (the consensus graph adds the events the node emitted, so that a checkpoint holds them).
    """

    async def node(state: Any, config: RunnableConfig) -> Any:
        owner = config["configurable"][OWNER]
        result = getattr(owner, method)(state)
        result = await result if inspect.isawaitable(result) else result
        finish = getattr(owner, "node_result", None)
        return finish(result) if finish is not None else result

    node.__name__ = method.lstrip("_")
    return node


def route(method: str) -> Callable[..., Any]:
    """A conditional-edge function that asks ``owner.<method>(state)`` where to go."""

    async def path(state: Any, config: RunnableConfig) -> Any:  # async: no hop to a worker thread
        return getattr(config["configurable"][OWNER], method)(state)

    path.__name__ = method.lstrip("_")
    return path


def bound(owner: object, **extra: Any) -> dict[str, Any]:
    """The run config that binds ``owner`` to a shared compiled graph."""
    return {"configurable": {OWNER: owner}, **extra}
