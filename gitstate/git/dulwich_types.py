"""Where gitstate's plain ``bytes`` meet dulwich's ``NewType`` s: one conversion per concept.

dulwich types SHAs and ref names as ``NewType`` s of ``bytes`` (``ObjectID``, ``Ref``);
gitstate passes plain ``bytes`` everywhere and converts here, where it hands
them to dulwich (the conversion costs nothing at run time).
"""

from __future__ import annotations

from dulwich.objects import ObjectID


def object_id(sha: bytes) -> ObjectID:
    """A hex SHA, as dulwich names an object."""
    return ObjectID(sha)
