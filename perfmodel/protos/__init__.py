"""Generated protobuf modules for the TpuGraphs formats (see README.md in this folder)."""
