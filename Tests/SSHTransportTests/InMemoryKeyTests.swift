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

    func parse(_ text: String) -> InMemoryEd25519Key? {
        OpenSSHKeyFile(text: text).flatMap(InMemoryEd25519Key.init)
    }

    /// The key file with one byte of its decoded content changed.
    func corrupting(_ text: String, at offset: (OpenSSHKeyFile) -> Int) throws -> String {
        let lines = text.split(separator: "\n").map(String.init)
        var data = [UInt8](try #require(Data(base64Encoded: lines.filter { !$0.hasPrefix("-----") }.joined())))
        data[offset(try #require(OpenSSHKeyFile(text: text)))] ^= 0x01
        return
            "-----BEGIN OPENSSH PRIVATE KEY-----\n\(Data(data).base64EncodedString(options: .lineLength64Characters))\n-----END OPENSSH PRIVATE KEY-----\n"
    }

    @Test("an unencrypted ed25519 key is parsed, matches its .pub, and its signatures verify")
    func unencryptedEd25519() throws {
        let (directory, path) = try keygen("-t ed25519 -N ''")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = try #require(parse(try String(contentsOfFile: path, encoding: .utf8)))
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
        let encryptedText = try String(contentsOfFile: encrypted, encoding: .utf8)
        #expect(parse(encryptedText) == nil)
        // Its public half is still read without the passphrase, so the agent's copy can be matched.
        let pub = try String(contentsOfFile: encrypted + ".pub", encoding: .utf8).split(separator: " ")
        #expect(
            OpenSSHKeyFile(text: encryptedText)?.publicBlob == Array(try #require(Data(base64Encoded: String(pub[1])))))
        #expect(IdentityFile(path: encrypted).publicBlob != nil) // still offered, through libssh2 or the agent
        #expect(parse(try String(contentsOfFile: ecdsa, encoding: .utf8)) == nil)

        let (directory, path) = try keygen("-t ed25519 -N ''")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(parse(try corrupting(text) { _ in 0 }) == nil, "bad magic")
        // The file's public key, relative to the end of the data: the private section follows it.
        let sectionStart: (OpenSSHKeyFile) -> Int = { file in
            let whole = [UInt8](
                Data(base64Encoded: text.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined())!)
            return whole.count - file.privateSection.count
        }
        #expect(parse(try corrupting(text) { sectionStart($0) + 4 }) == nil, "check words differ")
        // Byte 40 of the section is inside the private section's copy of the public key.
        #expect(parse(try corrupting(text) { sectionStart($0) + 40 }) == nil, "private and public halves differ")
        #expect(parse(text) != nil)
        #expect(parse("not a key") == nil)
    }
}
