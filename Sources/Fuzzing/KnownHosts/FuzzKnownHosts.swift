import CLibSSH2
import Foundation
import FuzzSupport
import Logging

@testable import SSHTransport

/// known_hosts files, read for one destination. Input: the host name on line 1, the port on
/// line 2 (22 if not a port), the file after. Checks, per line: the index that keeps lines from
/// libssh2 never drops a line OpenSSH's rules say names the host (that would turn a
/// known or revoked key into an unknown one); a matching entry has no negated pattern that
/// matches; a literal pattern globs itself. Then the whole file is loaded as a connection would.
@main
enum FuzzKnownHosts {
    nonisolated(unsafe) static var session: OpaquePointer?
    static let scratch = ScratchFile("known_hosts")
    static let logger = Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    static func main() {
        guard libssh2_init(0) == 0, let created = libssh2_session_init_ex(nil, nil, nil, nil) else {
            fatalError("libssh2 session could not be created")
        }
        session = created
        atexit { FuzzKnownHosts.scratch.remove() }
        runFuzzer { data, size in
            FuzzKnownHosts.testOneInput(fuzzInput(data, size))
            return 0
        }
    }

    static func testOneInput(_ input: UnsafeRawBufferPointer) {
        let lines = input.split(separator: UInt8(ascii: "\n"), maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count == 3 else { return }
        let host = String(decoding: lines[0].prefix(128), as: UTF8.self)
        guard !host.isEmpty, !host.contains("\0") else { return }
        let port =
            Int(String(decoding: lines[1].prefix(6), as: UTF8.self)).flatMap { (1...65535).contains($0) ? $0 : nil }
            ?? 22
        let file = lines[2]

        let lookupName = KnownHostsEntry.lookupName(host: host, port: port)
        let plainName = host.lowercased()
        var lineCount = 0
        for rawLine in file.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineCount += 1
            let text = Substring(decoding: rawLine, as: UTF8.self)
            guard let entry = KnownHostsEntry(line: text) else { continue }
            let names = entry.matches(lookupName) || entry.matches(plainName)
            if !entry.patterns.hasPrefix("|1|") {
                for pattern in entry.patterns.split(separator: ",") {
                    if pattern.hasPrefix("!"), names {
                        invariant(
                            !KnownHostsEntry.glob(
                                Array(pattern.dropFirst().lowercased().utf8)[...], Array(lookupName.utf8)[...])
                                || !entry.matches(lookupName),
                            "negated '\(pattern)' matches yet the entry names \(lookupName)")
                    }
                    let bytes = Array(pattern.utf8)
                    if !bytes.contains(UInt8(ascii: "*")), !bytes.contains(UInt8(ascii: "?")) {
                        invariant(
                            KnownHostsEntry.glob(bytes[...], bytes[...]),
                            "literal pattern '\(pattern)' does not glob itself")
                    }
                }
            }
            _ = entry.keyBlob
        }

        // The index must offer every entry that names the host; a dropped one would turn a known or
        // revoked key into an unknown one.
        let index = KnownHostsIndex(bytes: Array(file), path: "fuzz")
        let offered = Set(index.candidates(for: [lookupName, plainName]))
        for (position, line) in index.lines.enumerated()
        where line.entry.matches(lookupName) || line.entry.matches(plainName) {
            invariant(offered.contains(position), "index drops '\(line.entry.patterns)', which names \(lookupName)")
        }

        scratch.store(file)
        guard
            let knownHosts = KnownHosts(
                files: [scratch.path], host: host, port: port, session: session!, logger: logger)
        else { return }
        invariant(knownHosts.entryCount <= lineCount, "\(knownHosts.entryCount) entries from \(lineCount) lines")
        let types = knownHosts.knownTypes(host: host, port: port)
        invariant(types.count <= HostKeyType.all.count, "more key types than exist")
        let key: [UInt8] = [0, 0, 0, 7] + Array("ssh-rsa".utf8)
        _ = key.withUnsafeBytes { knownHosts.isRevoked(key: $0) }
    }
}
