import Replay

// Capture reads HTTP/1 heads through Replay's core (HTTP1Head.swift there);
// the start-line check keeps its old name for the engine's direction guess.
typealias HTTPStartLine = HTTP1StartLine
