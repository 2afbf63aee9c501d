/// What a host name, address or node class read from a live source may look like.
///
/// Live sources are untrusted: PuppetDB facts are reported by the nodes themselves, and a
/// gateway command's output is whatever the gateway printed. One rule for both keeps a fact such
/// as `"10.0.0.5 -\nprod-db-1 10.9.9.9"` from smuggling a host into a run.
enum HostNameRules {
    /// DNS names and IPv4 addresses: ASCII letters, digits, `-`, `.` and `_`, not starting with `-`
    /// (so nothing reads as an option), at most 253 characters.
    static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253, !text.hasPrefix("-"), !text.hasPrefix(".") else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isASCIIDigit || "-._".contains($0)) }
    }

    /// A host name, or an IPv6 address (hex digits, `:` and `.` for an embedded IPv4 tail).
    static func isAddress(_ text: String) -> Bool {
        if isHostName(text) { return true }
        guard text.contains(":"), text.utf8.count <= 45 else { return false }
        return text.allSatisfy { $0.isHexDigit && $0.isASCII || $0 == ":" || $0 == "." }
    }

    /// Node classes such as `cache` or `backend_lb`: ASCII letters, digits, `_` and `-`.
    static func isNodeClass(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 64, !text.hasPrefix("-") else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isASCIIDigit || "_-".contains($0)) }
    }
}
