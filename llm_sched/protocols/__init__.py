"""Sans-I/O protocol cores on one base (PBFT, Tendermint, Multi-Paxos, Raft, weighted voting, bidding,
negotiation, gossip), their messages, quorum math and quorum certificates."""
