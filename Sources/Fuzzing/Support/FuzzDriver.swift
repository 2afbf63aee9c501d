import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// libFuzzer's entry point for programs that keep their own `main` (LLVM 11 and later). SwiftPM
/// gives every executable a `main` of its own, so the harnesses hand control to libFuzzer here
/// rather than defining `LLVMFuzzerTestOneInput` and fighting the linker over `main`.
// swift-format-ignore: AlwaysUseLowerCamelCase
// The C symbol's own name.
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// Runs libFuzzer with this process's arguments, calling `testOneInput` for each input.
public func runFuzzer(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}

/// The input as a buffer (libFuzzer passes a null pointer for the empty input).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    guard let data, size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: data, count: size)
}

/// An invariant of the code under test: when it fails, the input is a finding, so stop the
/// process (libFuzzer saves the input as a crash-* file) and say which invariant broke.
public func invariant(
    _ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
) {
    if !condition() {
        let text = Array("invariant broken at \(file):\(line): \(message())\n".utf8)
        _ = text.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        abort()
    }
}

/// Reads a little-endian integer of `T`'s width from the front of `bytes`, for harnesses that
/// spend a few input bytes on choices (chunk sizes, sequence numbers); zero when input runs out.
public struct FuzzBytes {
    public private(set) var remaining: UnsafeRawBufferPointer.SubSequence

    public init(_ bytes: UnsafeRawBufferPointer) { remaining = bytes[...] }

    public var isEmpty: Bool { remaining.isEmpty }

    public mutating func take<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) -> T {
        var value: T = 0
        for index in 0..<MemoryLayout<T>.size {
            guard let byte = remaining.first else { break }
            value |= T(byte) << (8 * index)
            remaining = remaining.dropFirst()
        }
        return value
    }

    /// Up to `count` bytes.
    public mutating func take(upTo count: Int) -> UnsafeRawBufferPointer.SubSequence {
        let taken = remaining.prefix(count)
        remaining = remaining.dropFirst(taken.count)
        return taken
    }
}

/// A scratch file for harnesses whose code under test reads a path: in /dev/shm when there is one,
/// written with plain write(2) (FileManager's atomic write syncs to disk, which took most of the time).
public struct ScratchFile: Sendable {
    public let path: String

    public init(_ name: String) {
        var isDirectory: ObjCBool = false
        let directory =
            FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory) && isDirectory.boolValue
            ? "/dev/shm" : NSTemporaryDirectory()
        path = "\(directory)/govuk-fab-fuzz-\(getpid())-\(name)"
    }

    public func store<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { fatalError("cannot write \(path)") }
        defer { close(descriptor) }
        let contiguous = Array(bytes)
        var offset = 0
        while offset < contiguous.count {
            let written = contiguous.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
            guard written > 0 else { fatalError("cannot write \(path)") }
            offset += written
        }
    }

    public func remove() { unlink(path) }
}
