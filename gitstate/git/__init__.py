"""The git engine: objects, packs, refs, locks and config of one bare repository.

It knows git's file formats and, of agents, only what their refs and commits look
like (a checkpoint's layout, an agent's branch and names for locks and journals);
the rest of gitstate reads and writes git only through this package, the only code
of gitstate that imports dulwich. Its modules, each the one place for what
it owns:

- ``store``: :class:`~gitstate.git.store.Store`, one repository's engine tied
  together (reader, loose writer, refs, locks, journals; a dulwich ``Repo`` per
  thread for alternates and fetches): what the core uses.
- ``reader``: the one object reader (loose objects and packs, cached).
- ``loose``: the one object writer (loose objects), and the removal of the
  temporary files killed writers leave.
- ``refs``: the ref parsers (git's rules: loose refs, ``packed-refs``, reflogs,
  journal lines), ref reading, compare-and-swap updates with reflogs,
  ``packed-refs`` rewriting.
- ``journal``: operations moving several refs of an agent, their journal and
  its roll-forward after a crash.
- ``locks``: gitstate's ``flock`` s, git's ``<file>.lock`` protocol, fsync.
- ``config``: the repository's config: one reader, one read-modify-write under
  one lock, the repository formats gitstate refuses.
- ``bare``: creating a bare repository, checking that a folder is one.
- ``layout``: a checkpoint's blob, tree and commit; the light commit and tag
  parsers.
- ``objectset``: compact tables of objects, maintenance's object reader, the
  layout of a pack's entries.
- ``packing``: delta-compressed packs (planned along histories, capped chains),
  written to a file or streamed to a push.
- ``delta``: git's delta encoding, tuned for canonical JSON.
- ``gc``: maintenance runs (packing loose objects, geometric merging, pruning).
- ``reclaim``: what maintenance may delete (one conservative reachability rule)
  and deleting it.
- ``transport``: git servers (URLs and their secrets, push and fetch through
  dulwich's client).
- ``dulwich_types``: gitstate's ``bytes`` converted to dulwich's typed SHAs and
  ref names, in one place.
"""
