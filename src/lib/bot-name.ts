/**
 * Bot names end up in certificates (subject, SSH key id) and in file names of the bot agent, so
 * they are kept to a safe alphabet: a letter or digit, then letters, digits, `.`, `_`, `-`; at
 * most 128 characters. Leaf module: the resource loader checks names with it at load, the CA
 * again before it signs.
 */
export const BOT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
