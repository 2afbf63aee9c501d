import Crypto
import Foundation

/// One known_hosts line, matched by OpenSSH's rules rather than libssh2 1.10's.
///
/// libssh2 ignores negated patterns, wildcards and markers, and for a non-standard port falls
/// back from `[host]:port` to a plain `host` entry; OpenSSH does none of that. So the matching
/// is decided here, and libssh2 only ever sees entries already known to name the host, written
/// in the one form it compares (see ``KnownHosts``).
struct KnownHostsEntry {
    enum Marker: Equatable { case none, revoked, certAuthority }

    let marker: Marker
    /// The comma-separated host patterns field.
    let patterns: Substring
    let keyType: Substring
    let base64Key: Substring

    /// Parses `[@marker] patterns keytype base64 [comment]`; nil for anything shorter.
    init?(line: Substring) {
        var fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })[...]
        guard let first = fields.first else { return nil }
        if first.hasPrefix("@") {
            switch first {
            case "@revoked": marker = .revoked
            case "@cert-authority": marker = .certAuthority
            default: return nil
            }
            fields = fields.dropFirst()
        } else {
            marker = .none
        }
        guard fields.count >= 3 else { return nil }
        let values = Array(fields.prefix(3))
        patterns = values[0]
        keyType = values[1]
        base64Key = values[2]
    }

    /// The name OpenSSH looks up: `host`, or `[host]:port` when the port is not 22.
    static func lookupName(host: String, port: Int) -> String {
        port == 22 ? host.lowercased() : "[\(host.lowercased())]:\(port)"
    }

    /// OpenSSH's `match_hostname`: some pattern matches and no negated pattern does. A hashed
    /// field (`|1|salt|hash`) is one name hashed with HMAC-SHA1.
    func matches(_ name: String) -> Bool {
        if patterns.hasPrefix("|1|") { return Self.hashedMatches(patterns, name) }
        var matched = false
        for pattern in patterns.split(separator: ",") {
            if pattern.hasPrefix("!") {
                if Self.glob(Array(pattern.dropFirst().lowercased().utf8)[...], Array(name.utf8)[...]) { return false }
            } else if Self.glob(Array(pattern.lowercased().utf8)[...], Array(name.utf8)[...]) {
                matched = true
            }
        }
        return matched
    }

    /// The decoded key blob, for comparing with what a server presented.
    var keyBlob: [UInt8]? { Data(base64Encoded: String(base64Key)).map { [UInt8]($0) } }

    static func hashedMatches(_ field: Substring, _ name: String) -> Bool {
        let parts = field.dropFirst(3).split(separator: "|", omittingEmptySubsequences: false)
        guard parts.count == 2, let salt = Data(base64Encoded: String(parts[0])),
            let expected = Data(base64Encoded: String(parts[1])), salt.count == 20, expected.count == 20
        else { return false }
        let code = HMAC<Insecure.SHA1>.authenticationCode(for: Data(name.utf8), using: SymmetricKey(data: salt))
        return Data(code) == expected
    }

    /// `*` matches any run of characters, `?` any one character; everything else itself.
    static func glob(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex
        var t = text.startIndex
        var starP: Int? = nil
        var starT = t
        while t < text.endIndex {
            if p < pattern.endIndex, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.endIndex, pattern[p] == UInt8(ascii: "*") {
                starP = p
                starT = t
                p += 1
            } else if let star = starP {
                p = star + 1
                starT += 1
                t = starT
            } else {
                return false
            }
        }
        while p < pattern.endIndex, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.endIndex
    }
}
