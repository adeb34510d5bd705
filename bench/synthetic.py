"""A large gitstate history built fast: one pack written directly, refs in ``packed-refs``.

``build(path, agents, per_agent)`` creates a repository of ``agents`` agents with
``per_agent`` checkpoints each (blob, tree and commit per checkpoint, the same
formats ``save`` writes), in seconds instead of the minutes that as many saves
take. Objects are stored whole (no deltas) and indexed by ``git index-pack``, so
gc has the whole repack to do. Used by ``bench/run.py --gc-memory``.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import zlib

from dulwich.pack import pack_object_header
from dulwich.object_format import SHA1

from gitstate import StateRepository, codec
from gitstate.ids import branch_ref, new_checkpoint_id
from gitstate.message import build as build_message

COMMIT, TREE, BLOB = 1, 2, 3


def _raw_object(kind: int, raw: bytes) -> tuple[bytes, bytes]:
    """(binary sha, pack record) of one whole object."""
    name = (b"", b"commit", b"tree", b"blob")[kind]
    sha = hashlib.sha1(name + b" %d\0" % len(raw) + raw).digest()
    return sha, bytes(pack_object_header(kind, None, len(raw), SHA1)) + zlib.compress(raw, 1)


def build(path: str, agents: int, per_agent: int, seed: int = 7) -> tuple[int, int]:
    """Create the repository at ``path``; return its number of objects and largest state."""
    StateRepository.init(path)
    rnd = random.Random(seed)
    words = [f"w{rnd.getrandbits(20):x}" for _ in range(500)]
    pack_dir = os.path.join(path, "objects", "pack")
    os.makedirs(pack_dir, exist_ok=True)
    tmp = os.path.join(pack_dir, "tmp_synthetic.pack")
    count = agents * per_agent * 3
    hasher = hashlib.sha1()
    refs = []
    largest = 0
    with open(tmp, "wb") as f:
        def put(chunk: bytes) -> None:
            f.write(chunk)
            hasher.update(chunk)

        put(b"PACK" + (2).to_bytes(4, "big") + count.to_bytes(4, "big"))
        for a in range(agents):
            agent = f"agent-{a:06d}"
            author = f"{agent} <{agent}@gitstate>".encode()
            parent = None
            messages: list[str] = []
            for i in range(per_agent):
                messages = (messages + [" ".join(rnd.choices(words, k=40))])[-4:]
                state = {"agent_id": agent, "iteration": i, "messages": messages,
                         "memory": {"step": i, "note": rnd.choice(words)}}
                data = codec.encode(state)
                largest = max(largest, len(data))
                blob_sha, record = _raw_object(BLOB, data)
                put(record)
                tree_sha, record = _raw_object(TREE, b"100644 state.json\0" + blob_sha)
                put(record)
                text = build_message(f"{agent} iteration {i}", {
                    "Checkpoint-Id": new_checkpoint_id(), "Agent-Id": agent,
                    "Iteration": str(i), "Schema-Version": "1"})
                when = b"%d +0000" % (1_700_000_000 + i)
                raw = (b"tree " + tree_sha.hex().encode() + b"\n"
                       + (b"parent " + parent.hex().encode() + b"\n" if parent else b"")
                       + b"author " + author + b" " + when + b"\n"
                       + b"committer gitstate <gitstate@localhost> " + when + b"\n\n" + text)
                parent, record = _raw_object(COMMIT, raw)
                put(record)
            refs.append((branch_ref(agent), parent))
        f.write(hasher.digest())
    final = os.path.join(pack_dir, f"pack-{hasher.hexdigest()}.pack")
    os.rename(tmp, final)
    subprocess.run(["git", "index-pack", final], check=True, capture_output=True)
    with open(os.path.join(path, "packed-refs"), "wb") as f:
        f.write(b"# pack-refs with: peeled fully-peeled sorted \n")
        for ref, sha in sorted(refs):
            f.write(sha.hex().encode() + b" " + ref + b"\n")
    return count, largest
