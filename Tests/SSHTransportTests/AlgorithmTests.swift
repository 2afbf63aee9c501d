import Foundation
import Testing

@testable import SSHTransport

/// Which algorithms libssh2 1.10 negotiates with a real sshd. The transport sets no kex, cipher or
/// MAC preference because 1.10's own order already puts the cheapest first; these tests show that,
/// and that a server allowing only algorithms further down the list still connects.
@Suite("Negotiated algorithms", .enabled(if: isRoot, "needs root to run sshd"))
struct AlgorithmTests {
    /// Connects to `fixture`'s sshd trusting its `keyType` host key; the caller closes the session.
    private func connect(_ fixture: StandaloneFixture, keyType: String) async throws -> (
        SSHSession, NegotiatedAlgorithms
    ) {
        let knownHosts = try fixture.knownHosts([try fixture.sshd.knownHostsLine(keyType)])
        let session = try await fixture.connect(fixture.options(knownHosts: knownHosts))
        return (session, await session.negotiatedAlgorithms())
    }

    @Test("against OpenSSH's defaults: curve25519-sha256, ssh-ed25519, aes128-ctr, hmac-sha2-256")
    func defaults() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let (session, algorithms) = try await connect(fixture, keyType: "ed25519")
        await session.close()
        #expect(
            algorithms
                == NegotiatedAlgorithms(
                    keyExchange: "curve25519-sha256", hostKey: "ssh-ed25519", cipher: "aes128-ctr",
                    mac: "hmac-sha2-256"))
    }

    @Test("a server allowing only algorithms lower in libssh2's list still connects and runs commands")
    func fallback() async throws {
        let fixture = try await StandaloneFixture.make(
            hostKeyTypes: ["ecdsa"],
            sshdConfig: [
                "KexAlgorithms diffie-hellman-group14-sha256", "Ciphers aes256-ctr", "MACs hmac-sha2-512",
            ])
        defer { fixture.cleanUp() }
        let (session, algorithms) = try await connect(fixture, keyType: "ecdsa")
        let (result, stdout, _) = try await session.run("echo ok")
        await session.close()
        #expect(
            algorithms
                == NegotiatedAlgorithms(
                    keyExchange: "diffie-hellman-group14-sha256", hostKey: "ecdsa-sha2-nistp256", cipher: "aes256-ctr",
                    mac: "hmac-sha2-512"))
        #expect(result.exitStatus == 0)
        #expect(stdout == "ok\n")
    }
}
