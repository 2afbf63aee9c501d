import FuzzSupport
import SSHConfig

/// ssh_config text, resolved for a few destinations. Checks: resolution is a pure function of
/// the file and the host; a resolved port is a TCP port; every ProxyJump hop renders back to
/// text that parses to the same hop (the chain is handed on as text); jump chains read on their
/// own (one per input line) round-trip the same way.
@main
enum FuzzSSHConfig {
    /// A home that does not exist, so relative `Include`s (under ~/.ssh) read nothing.
    static let environment = SSHConfigEnvironment(
        homeDirectory: "/nonexistent/fuzz-home", localUser: "fuzz", localHostName: "fuzz.example", userID: 4242)

    static func main() {
        runFuzzer { data, size in
            FuzzSSHConfig.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        for line in text.split(separator: "\n") {
            if let chain = try? JumpSpec.parseChain(String(line)) { checkRoundTrip(chain) }
        }
        // An absolute or ~ `Include` would read this machine's files (even /dev/zero): not fuzzed.
        let lowered = text.lowercased()
        if lowered.contains("include"),
            ["~", " /", "\t/", "\"/", "=/"].contains(where: { lowered.contains($0) }) || lowered.hasPrefix("/")
        {
            return
        }
        guard let file = try? SSHConfigFile.parse(text, path: "/fuzz/ssh_config", environment: environment) else {
            return
        }
        var hosts = ["web-1", "10.1.2.3", "::1", "cache-1.production.govuk.example"]
        if let word = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).dropFirst().first {
            hosts.append(String(word.prefix(64)))
        }
        for host in hosts {
            let resolved = file.resolve(host: host)
            invariant(resolved == file.resolve(host: host), "resolving \(host) twice differs")
            _ = file.resolve(host: host, user: "given")
            if let port = resolved.port { invariant((1...65535).contains(port), "resolved port \(port)") }
            if let chain = resolved.proxyJump { checkRoundTrip(chain) }
        }
    }

    static func checkRoundTrip(_ chain: [JumpSpec]) {
        for hop in chain {
            let text = hop.description
            do {
                let again = try JumpSpec(parsing: text)
                invariant(again == hop, "jump hop \(hop) renders as '\(text)', which reads as \(again)")
            } catch {
                invariant(false, "jump hop \(hop) renders as '\(text)', which does not parse: \(error)")
            }
        }
    }
}
