//! mailpolicyd: the filter that carries out a mailpolicy policy.
