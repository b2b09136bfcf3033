"""High availability: several replicas, one sender, and restarts that neither lose nor
repeat lines (docs/ha.md).

    election.py  + lease.py        which replica sends (a coordination.k8s.io/v1 Lease)
    checkpoint.py + recorder.py    what was delivered (a ConfigMap, written by the leader)
    baseline.py                    what a first list still owes, from the checkpoint
    gate.py                        the correlator's sink: send when leading, hold when not
    replica.py                     wires these together and orders startup and shutdown
"""
