import Crypto
import Foundation
import SSHTransport

/// `key=value` lines printed by a remote state script.
struct KeyValueLines {
    private var values: [String: String] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
    }

    subscript(key: String) -> String? { values[key] }
}

enum SHA256Hex {
    static func of(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}

/// Writing a whole file on a host atomically: a temporary file in the same
/// directory, owner and mode copied from the old file when there is one,
/// then one `mv`.
enum AtomicFile {
    static func writeScript(path: String, content: String, mode: Int32) -> String {
        let octal = String(mode, radix: 8)
        return """
            p=\(shellQuote(path)); t="$p.govuk-fab-tmp.$$"
            mkdir -p "$(dirname "$p")" && printf '%s' \(shellQuote(content)) > "$t" \
            && { if [ -e "$p" ]; then chown --reference="$p" "$t" 2>/dev/null; fi; chmod \(octal) "$t"; } \
            && mv -f "$t" "$p" || { rm -f "$t"; exit 1; }
            """
    }
}

extension String {
    /// The last non-empty line, for one-line error reports.
    var lastLine: String? {
        split(separator: "\n").last { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map(String.init)
    }
}
