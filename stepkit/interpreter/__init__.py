"""A local interpreter of the Amazon States Language (JSONPath), for `stepkit run --local`.

It runs a compiled `statemachine.asl.json` with adapters in place of AWS services, writes the history
as GetExecutionHistory shapes it, and redrives a failed execution as AWS does. Pure: it imports nothing
else of stepkit, and `stepkit compile` never imports it.
"""
from .api import Adapter, Adapters, Result, TaskCall
from .errors import DefinitionError, StatesError, TaskFailure
from .execution import Execution, NotRedrivable, check_resources
from .history import load_history

__all__ = ["Adapter", "Adapters", "DefinitionError", "Execution", "NotRedrivable", "Result", "StatesError",
           "TaskCall", "TaskFailure", "check_resources", "load_history"]
