extension Character {
    /// `0`–`9` only (unlike `isNumber`, which accepts other scripts' digits and fractions).
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
