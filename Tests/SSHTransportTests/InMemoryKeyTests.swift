import Crypto
import Foundation
import Testing

@testable import SSHTransport

/// Keys made by the real ssh-keygen: which ones are signed in-process, and that the signatures verify.
@Suite("In-memory ed25519 keys")
struct InMemoryKeyTests {
    func keygen(_ arguments: String) throws -> (directory: String, path: String) {
        let directory = try makeTemporaryDirectory("govuk-fab-keys")
        let path = "\(directory)/id"
        let made = try SSHTransportTests.shell("ssh-keygen -q -C test -f \(path) \(arguments)")
        #expect(made.status == 0, "\(made.output)")
        return (directory, path)
    }

    @Test("an unencrypted ed25519 key is parsed, matches its .pub, and its signatures verify")
    func unencryptedEd25519() throws {
        let (directory, path) = try keygen("-t ed25519 -N ''")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = try #require(InMemoryEd25519Key(openSSHText: try String(contentsOfFile: path, encoding: .utf8)))
        let identity = IdentityFile(path: path)
        #expect(identity.inMemoryKey != nil)
        let pub = try String(contentsOfFile: path + ".pub", encoding: .utf8).split(separator: " ")
        #expect(key.publicBlob == Array(try #require(Data(base64Encoded: String(pub[1])))))
        let message = Array("session id and userauth request".utf8)
        let signature = try key.privateKey.signature(for: message)
        let publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: key.publicBlob.suffix(32))
        #expect(publicKey.isValidSignature(signature, for: message))
    }

    @Test("passphrase-protected, ECDSA and damaged keys are left to libssh2")
    func othersAreNotParsed() throws {
        let (encryptedDirectory, encrypted) = try keygen("-t ed25519 -N secret-passphrase")
        let (ecdsaDirectory, ecdsa) = try keygen("-t ecdsa -N ''")
        defer {
            try? FileManager.default.removeItem(atPath: encryptedDirectory)
            try? FileManager.default.removeItem(atPath: ecdsaDirectory)
        }
        #expect(InMemoryEd25519Key(openSSHText: try String(contentsOfFile: encrypted, encoding: .utf8)) == nil)
        #expect(IdentityFile(path: encrypted).publicBlob != nil)  // still offered, through libssh2 or the agent
        #expect(InMemoryEd25519Key(openSSHText: try String(contentsOfFile: ecdsa, encoding: .utf8)) == nil)

        let (directory, path) = try keygen("-t ed25519 -N ''")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        // Flip one base64 character in the private section: the check words or the key no longer match.
        let index = lines.count - 3
        lines[index] = String(lines[index].map { $0 == "A" ? "B" : $0 })
        #expect(InMemoryEd25519Key(openSSHText: lines.joined(separator: "\n")) == nil)
        #expect(InMemoryEd25519Key(openSSHText: "not a key") == nil)
    }
}
