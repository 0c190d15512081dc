"""Container runtimes behind one interface (runtime/interface.py): runc (with conmon) and plain
host processes."""
