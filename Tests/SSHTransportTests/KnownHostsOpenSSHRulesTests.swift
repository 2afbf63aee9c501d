import Foundation
import Testing

@testable import SSHTransport

/// known_hosts is read by OpenSSH's rules: `@revoked` wins over a plain line, a plain `host` entry
/// speaks for `[host]:port` only when no `[host]:port` entry of that key type exists, negated
/// patterns exclude, wildcards and hashed names match.
/// Each case is also given to OpenSSH's own `ssh -o StrictHostKeyChecking=yes` on the same file,
/// and both must agree.
@Suite("known_hosts as OpenSSH reads it", .enabled(if: isRoot, "needs root to run sshd"))
struct KnownHostsOpenSSHRulesTests {
    /// What OpenSSH decides for this file: true when it accepts the host key.
    static func openSSHAccepts(_ fixture: StandaloneFixture, knownHosts: String) throws -> Bool {
        let result = try shell(
            """
            ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\(knownHosts) \
            -o GlobalKnownHostsFile=/dev/null -o CheckHostIP=no -o HostKeyAlgorithms=ssh-ed25519 \
            -o ConnectTimeout=20 -i \(fixture.clientKey) -p \(fixture.sshd.port) root@127.0.0.1 true 2>&1
            """)
        return result.status == 0
    }

    static func govukFabAccepts(_ fixture: StandaloneFixture, knownHosts: String) async throws -> Bool {
        do {
            let session = try await fixture.connect(fixture.options(knownHosts: knownHosts))
            await session.close()
            return true
        } catch let error as SSHError where error.operation == .hostKey {
            return false
        }
    }

    @Test func casesAgreeWithOpenSSH() async throws {
        let fixture = try StandaloneFixture(hostKeyTypes: ["ed25519"])
        defer { fixture.cleanUp() }
        let port = fixture.sshd.port
        let key = try fixture.sshd.publicKey("ed25519").split(separator: " ").prefix(2).joined(separator: " ")
        let other = try readText(try makeUserKey(in: fixture.clientDirectory, name: "other") + ".pub")
            .split(separator: " ").prefix(2).joined(separator: " ")
        let cases: [(name: String, lines: [String], accepted: Bool)] = [
            ("the right key", ["[127.0.0.1]:\(port) \(key)"], true),
            (
                "@revoked beats a plain line listing the same key",
                ["[127.0.0.1]:\(port) \(key)", "@revoked [127.0.0.1]:\(port) \(key)"], false
            ),
            ("@revoked by wildcard", ["@revoked * \(key)", "[127.0.0.1]:\(port) \(key)"], false),
            ("a plain entry counts for another port when no [host]:port entry exists", ["127.0.0.1 \(key)"], true),
            (
                "a plain entry with another key does not override [host]:port",
                ["127.0.0.1 \(other)", "[127.0.0.1]:\(port) \(key)"], true
            ),
            (
                "a [host]:port entry with another key is not rescued by a plain entry",
                ["[127.0.0.1]:\(port) \(other)", "127.0.0.1 \(key)"], false
            ),
            ("the same, in the other order", ["127.0.0.1 \(key)", "[127.0.0.1]:\(port) \(other)"], false),
            ("a negated pattern excludes the host", ["[127.0.0.*]:\(port),![127.0.0.1]:\(port) \(key)"], false),
            ("a negated [host]:port falls back to the plain name", ["*,![127.0.0.1]:\(port) \(key)"], true),
            ("a negated pattern for another host does not", ["[127.0.0.1]:\(port),![127.0.0.2]:\(port) \(key)"], true),
            ("wildcards match", ["[127.0.0.?]:\(port) \(key)"], true),
            ("a wildcard for other hosts does not", ["[10.*]:\(port) \(key)"], false),
        ]
        for testCase in cases {
            let file = try fixture.knownHosts(testCase.lines, name: "kh-\(testCase.name.hashValue & 0xffff)")
            let openSSH = try Self.openSSHAccepts(fixture, knownHosts: file)
            let ours = try await Self.govukFabAccepts(fixture, knownHosts: file)
            #expect(openSSH == testCase.accepted, "OpenSSH on: \(testCase.name)")
            #expect(ours == testCase.accepted, "govuk-fab on: \(testCase.name)")
        }
    }

    @Test("a hashed entry (ssh-keygen -H) matches, and its @revoked twin refuses with a clear message")
    func hashedAndRevokedMessage() async throws {
        let fixture = try StandaloneFixture(hostKeyTypes: ["ed25519"])
        defer { fixture.cleanUp() }
        let file = try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")], name: "hashed")
        _ = try shell("ssh-keygen -q -H -f \(file) 2>&1; rm -f \(file).old")
        #expect(try readText(file).hasPrefix("|1|"))
        #expect(try await Self.govukFabAccepts(fixture, knownHosts: file))
        #expect(try Self.openSSHAccepts(fixture, knownHosts: file))

        let revoked = try fixture.knownHosts(
            [try fixture.sshd.knownHostsLine("ed25519"), "@revoked " + (try fixture.sshd.knownHostsLine("ed25519"))],
            name: "revoked")
        let error = try await fixture.connectFailure(fixture.options(knownHosts: revoked))
        guard case .hostKeyRevoked = error.kind else {
            Issue.record("expected hostKeyRevoked, got \(error)")
            return
        }
        #expect(error.description.contains("REVOKED HOST KEY"))
    }

    @Test func globMatchesLikeOpenSSH() {
        func glob(_ pattern: String, _ text: String) -> Bool {
            KnownHostsEntry.glob(Array(pattern.utf8)[...], Array(text.utf8)[...])
        }
        #expect(glob("*", "anything"))
        #expect(glob("cache-?", "cache-1"))
        #expect(!glob("cache-?", "cache-10"))
        #expect(glob("*.example.com", "a.b.example.com"))
        #expect(!glob("*.example.com", "example.com"))
        #expect(glob("[10.0.0.*]:2222", "[10.0.0.5]:2222"))
        #expect(!glob("[10.0.0.*]:2222", "[10.0.0.5]:22"))
    }
}
