/// Glob matching as ssh_config(5) "PATTERNS" define it: `*` is any run of characters, `?` exactly one.
enum Glob {
    static func matches(_ text: String, pattern: String) -> Bool {
        let t = Array(text.unicodeScalars)
        let p = Array(pattern.unicodeScalars)
        // Iterative wildcard matching with backtracking to the last `*`; linear in practice.
        var ti = 0
        var pi = 0
        var starPattern = -1
        var starText = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                ti += 1
                pi += 1
            } else if pi < p.count, p[pi] == "*" {
                starPattern = pi
                starText = ti
                pi += 1
            } else if starPattern >= 0 {
                pi = starPattern + 1
                starText += 1
                ti = starText
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

/// One pattern of a `Host` line or of a `Match` pattern list, possibly negated with `!`.
struct HostPattern: Sendable, Hashable {
    var pattern: String
    var negated: Bool

    init(_ text: String) {
        if text.hasPrefix("!") {
            negated = true
            pattern = String(text.dropFirst())
        } else {
            negated = false
            pattern = text
        }
    }

    /// OpenSSH's rule for a list: any matching negated pattern rejects the name outright,
    /// otherwise the name is accepted if some plain pattern matches.
    static func listMatches(_ name: String, _ patterns: [HostPattern], caseInsensitive: Bool) -> Bool {
        let subject = caseInsensitive ? name.lowercased() : name
        var positive = false
        for candidate in patterns {
            let pattern = caseInsensitive ? candidate.pattern.lowercased() : candidate.pattern
            if Glob.matches(subject, pattern: pattern) {
                if candidate.negated { return false }
                positive = true
            }
        }
        return positive
    }
}
