"""Where gitstate's plain ``bytes`` meet dulwich's ``NewType`` s: one conversion per concept.

dulwich types SHAs and ref names as ``NewType`` s of ``bytes`` (``ObjectID``,
``RawObjectID``, ``Ref``);
gitstate passes plain ``bytes`` everywhere and converts here, where it hands
them to dulwich (the conversion costs nothing at run time).
"""

from __future__ import annotations

from collections.abc import Mapping

from dulwich.objects import ObjectID, RawObjectID
from dulwich.refs import Ref


def object_id(sha: bytes) -> ObjectID:
    """A hex SHA, as dulwich names an object."""
    return ObjectID(sha)


def raw_object_id(binsha: bytes) -> RawObjectID:
    """A binary SHA, as dulwich names an object in a pack."""
    return RawObjectID(binsha)


def ref_name(name: bytes) -> Ref:
    """A ref name, as dulwich names a ref."""
    return Ref(name)


def ref_map(refs: Mapping[bytes, bytes]) -> dict[Ref, ObjectID]:
    """Refs and their SHAs, as dulwich's push takes them."""
    return {Ref(name): ObjectID(sha) for name, sha in refs.items()}


def plain_refs(refs: Mapping[Ref, ObjectID]) -> dict[bytes, bytes]:
    """Refs and their SHAs as dulwich gives them (a server's), as gitstate takes them."""
    return {name: sha for name, sha in refs.items()}


def remote_path(path: str) -> bytes:
    """The path on a server that ``get_transport_and_path`` gave, as ``send_pack`` is typed
    to take it (UTF-8, as dulwich's clients encode it)."""
    return path.encode()
