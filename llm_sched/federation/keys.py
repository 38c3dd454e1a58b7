"""The federation's keys: each agent's private key in its own folder, every public key in the genesis.

``federation up`` (or ``federation init``) makes them once, under the data folder::

    DATA/genesis.json             the federation's name, file, members and their public keys
    DATA/agents/NAME/key.pem      NAME's Ed25519 private key (mode 0600); only NAME's process reads it
    DATA/executor/key.pem         with an executor: its key, which signs its reports in the job log

A member trusts the public keys of the genesis, not keys announced on the bus: whoever can publish
on the bus still cannot sign for a member (as a validator set is fixed in a blockchain's genesis).
Running the agents on several hosts means copying the genesis and each agent's own key file there.
Keys are kept across restarts, so a certificate made before a crash still checks after it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from llm_sched.core.state import ClusterState
from llm_sched.errors import UserError
from llm_sched.federation.execution import ExecutionPlan, ReportKey
from llm_sched.federation.spec import Federation
from llm_sched.protocols.signed_messages import load_private_pem, private_pem, public_hex, public_key

GENESIS = "genesis.json"


@dataclass(frozen=True)
class Genesis:
    """The members' public keys, by member index."""

    federation: str
    public: tuple[Ed25519PublicKey, ...]
    hex_keys: tuple[str, ...]
    execution: ExecutionPlan | None = None  # where decisions run, and the cluster they run on
    executor_key: Ed25519PublicKey | None = None  # what signs the executor's reports

    @property
    def reports(self) -> ReportKey | None:
        """The key every member checks the executor's reports against (None: no report is taken)."""
        return None if self.executor_key is None else ReportKey(self.federation, self.executor_key)

    def initial_state(self, fed: Federation) -> ClusterState:
        """The cluster every member starts from: the executor's (with the file's pool descriptions),
        else the federation file's."""
        if self.execution is None:
            return fed.initial_state()
        return ClusterState(fed.scenario.cluster.described(self.execution.pools))


def agent_dir(data: Path, name: str) -> Path:
    """The folder of one agent (its key, ledger and log); agent names are checked identifiers."""
    return data / "agents" / name


def executor_key_path(data: Path) -> Path:
    return data / "executor" / "key.pem"


def _new_key(path: Path) -> None:
    """A new Ed25519 private key at ``path`` (mode 0600), unless one is there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem(Ed25519PrivateKey.generate()))


def init_keys(fed: Federation, data: Path, execution: ExecutionPlan | None = None) -> Genesis:
    """Make the keys that are missing and write the genesis (with ``execution``, where decisions run);
    keep what exists (a restart keeps its keys, and its executor: a genesis is never changed)."""
    if (data / GENESIS).exists():
        genesis = read_genesis(fed, data)
        if genesis.execution != execution:
            said = genesis.execution.executor if genesis.execution else "no executor"
            raise UserError(f"{data / GENESIS} was made for {said}; a federation's genesis is not changed: use "
                            "another --data folder")
        if genesis.executor_key is not None and not executor_key_path(data).exists():
            raise UserError(f"{executor_key_path(data)} is missing, and {data / GENESIS} names its public key: "
                            "restore the file, or use another --data folder")
        executor_ready = execution is None or genesis.executor_key is not None  # else a genesis made before it
        if executor_ready and all((agent_dir(data, m.name) / "key.pem").exists() for m in fed.members):
            return genesis
    hex_keys = []
    for m in fed.members:
        _new_key(agent_dir(data, m.name) / "key.pem")
        hex_keys.append(public_hex(load_private_key(data, m.name)))
    body = {"federation": fed.name, "file": str(fed.path), "members": [m.name for m in fed.members],
            "keys": hex_keys, "execution": None if execution is None else execution.model_dump(mode="json")}
    if execution is not None:
        _new_key(executor_key_path(data))
        body["executor_key"] = public_hex(load_executor_key(data))
    tmp = data / (GENESIS + ".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(data / GENESIS)  # a reader sees the old genesis or the new one, never half of one
    return read_genesis(fed, data)


def read_genesis(fed: Federation, data: Path) -> Genesis:
    """The genesis of ``fed`` under ``data``; UserError when missing or not this federation's."""
    path = data / GENESIS
    try:
        body = json.loads(path.read_text())
        members, keys = body["members"], body["keys"]
        public = tuple(public_key(k) for k in keys)
        execution = None if body.get("execution") is None else ExecutionPlan.model_validate(body["execution"])
        executor_key = None if body.get("executor_key") is None else public_key(body["executor_key"])
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: start the federation with `llm-sched federation up FILE "
                        f"--data {data}` (it makes the keys)") from None
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        raise UserError(f"{path} is not a federation genesis ({type(exc).__name__}); move it away and run "
                        f"`llm-sched federation up` again") from None
    if body.get("federation") != fed.name or members != [m.name for m in fed.members] or len(public) != fed.n:
        raise UserError(f"{path} is the genesis of another federation or membership; use another --data folder")
    return Genesis(fed.name, public, tuple(keys), execution, executor_key)


def load_private_key(data: Path, name: str) -> Ed25519PrivateKey:
    """Agent ``name``'s private key; UserError naming the file when missing or damaged."""
    return _key_file(agent_dir(data, name) / "key.pem", f"`llm-sched federation up FILE --data {data}` makes "
                     "every agent's key")


def load_executor_key(data: Path) -> Ed25519PrivateKey:
    """The executor's private key; UserError naming the file when missing or damaged."""
    return _key_file(executor_key_path(data), f"`llm-sched federation up FILE --executor slurm|local --data {data}` "
                     "makes the executor's key")


def _key_file(path: Path, maker: str) -> Ed25519PrivateKey:
    try:
        return load_private_pem(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: {maker}") from None
    except ValueError:
        raise UserError(f"{path} is not an Ed25519 private key") from None
