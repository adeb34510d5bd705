"""The git engine: objects, packs, refs, locks and config of one bare repository.

Nothing here knows about agents' states beyond the layout of a checkpoint's commit;
the rest of gitstate reads and writes git only through this package.
"""
