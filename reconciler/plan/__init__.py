"""Planning: a pure function from (desired, observed) to an ordered, closed set of actions."""
