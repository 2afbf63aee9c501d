import CLibSSH2
import Crypto
import Foundation

/// An unencrypted OpenSSH ed25519 private key, kept in memory and signed in-process.
///
/// libssh2 1.10 built on OpenSSL 3 re-reads the key file and runs it through OpenSSL's decoder
/// framework on every connection (about 1.3 ms of CPU per host here); signing through
/// `libssh2_userauth_publickey`'s callback with a key parsed by us skips that. Other key types and
/// passphrase-protected keys still go through `libssh2_userauth_publickey_fromfile`.
struct InMemoryEd25519Key {
    /// SSH wire format: string "ssh-ed25519", string 32-byte public key.
    let publicBlob: [UInt8]
    let privateKey: Curve25519.Signing.PrivateKey

    /// Nil unless `file` holds an unencrypted ed25519 key whose private half matches its public half.
    init?(_ file: OpenSSHKeyFile) {
        guard file.cipher == Array("none".utf8) else { return nil }
        var section = WireReader(file.privateSection)
        guard let check = section.uint32(), section.uint32() == check,
            section.string() == Array("ssh-ed25519".utf8),
            let publicKey = section.string(), publicKey.count == 32,
            let secret = section.string(), secret.count == 64,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: secret[0..<32]),
            Array(key.publicKey.rawRepresentation) == publicKey,
            file.publicBlob == Self.wireBlob(publicKey)
        else { return nil }
        self.publicBlob = file.publicBlob
        self.privateKey = key
    }

    static func wireBlob(_ publicKey: [UInt8]) -> [UInt8] {
        let name = Array("ssh-ed25519".utf8)
        return bigEndian(UInt32(name.count)) + name + bigEndian(UInt32(publicKey.count)) + publicKey
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    /// Authenticates `user` with this key (one non-blocking step; EAGAIN means call again).
    func authenticate(session: OpaquePointer, user: String) -> Int32 {
        let box = Unmanaged.passRetained(SigningKeyBox(privateKey))
        defer { box.release() }
        var abstract: UnsafeMutableRawPointer? = box.toOpaque()
        return publicBlob.withUnsafeBufferPointer { blob in
            libssh2_userauth_publickey(session, user, blob.baseAddress, blob.count, signWithBoxedKey, &abstract)
        }
    }
}

/// Carries the key through libssh2's `void **abstract` to the C callback.
private final class SigningKeyBox {
    let key: Curve25519.Signing.PrivateKey
    init(_ key: Curve25519.Signing.PrivateKey) { self.key = key }
}

/// libssh2's sign callback: the raw 64-byte signature in memory from `malloc`, which libssh2 frees
/// with the session's default allocator (`free`).
private func signWithBoxedKey(
    _ session: OpaquePointer?, _ signature: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?,
    _ signatureLength: UnsafeMutablePointer<Int>?, _ data: UnsafePointer<UInt8>?, _ dataLength: Int,
    _ abstract: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> Int32 {
    guard let signature, let signatureLength, let data, let context = abstract?.pointee else { return -1 }
    let key = Unmanaged<SigningKeyBox>.fromOpaque(context).takeUnretainedValue().key
    guard let signed = try? key.signature(for: UnsafeBufferPointer(start: data, count: dataLength)),
        let out = malloc(signed.count)?.assumingMemoryBound(to: UInt8.self)
    else { return -1 }
    signed.withUnsafeBytes { out.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: signed.count) }
    signature.pointee = out
    signatureLength.pointee = signed.count
    return 0
}
