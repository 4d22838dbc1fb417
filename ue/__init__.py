"""The UE application: register, call, answer, exchange SRTP audio."""
