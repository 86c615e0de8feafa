"""`MaiaTokenizer`: the notewise vocabulary as a `transformers` fast tokenizer.

The vocabulary is fixed by the codec configuration (never learned): ``<pad> <unk> <start> <end>``,
then the codec's words in order (``p21..p108``, ``endp21..endp108``, ``wait1..wait48``, optional
``v{b}``), then one ``<composer:NAME>`` token per composer, then the three fill-in-the-middle tokens
``<fim_prefix> <fim_suffix> <fim_middle>`` (``docs/encoding.md`` §10). The backing ``tokenizers`` model is a
``WordLevel`` model with a whitespace pre-tokenizer, so the saved ``tokenizer.json`` loads with plain
``AutoTokenizer`` even where maia is not installed.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .codec import CodecConfig, NoteArray, NotewiseCodec, Piece
from .errors import MaiaInputError, MaiaTokenError
from .io import read_raw, to_piece, write_midi

__all__ = [
    "COMPOSER_ALIASES",
    "DEFAULT_COMPOSERS",
    "FIM_TOKENS",
    "MaiaTokenizer",
    "VocabularyLayout",
    "normalize_composer",
    "save_default_tokenizer",
]

COMPOSER_PREFIX = "<composer:"
SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<start>", "eos_token": "<end>"}
# Fill-in-the-middle sentinels, last in the vocabulary: a vocabulary saved before them keeps every id.
FIM_TOKENS = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")

# The 25 composers of piano-midi.de, the composers of the music21 corpus, and two catch-alls.
DEFAULT_COMPOSERS = (
    # piano-midi.de
    "albeniz", "bach", "balakirev", "beethoven", "borodin", "brahms", "burgmueller", "chopin",
    "clementi", "debussy", "godowsky", "granados", "grieg", "haydn", "liszt", "mendelssohn",
    "moszkowski", "mozart", "mussorgsky", "rachmaninoff", "ravel", "schubert", "schumann", "sinding",
    "tchaikovsky",
    # music21 corpus (those not above)
    "beach", "ciconia", "clara_schumann", "corelli", "cpe_bach", "handel", "johnson", "joplin",
    "josquin", "liliuokalani", "luca", "lusitano", "monteverdi", "palestrina", "schoenberg", "verdi",
    "weber", "webern",
    # folk and anonymous music; no composer known
    "traditional", "unknown",
)  # fmt: skip

# Names used by the corpora for the composers above (after lower-casing).
COMPOSER_ALIASES = {
    "schumann_robert": "schumann",
    "robert_schumann": "schumann",
    "schumann_clara": "clara_schumann",
    "cpebach": "cpe_bach",
    "c_p_e_bach": "cpe_bach",
    "johnson_j_r": "johnson",
    "burgmuller": "burgmueller",
    "christmas": "traditional",
    "essenfolksong": "traditional",
    "airdsairs": "traditional",
    "ryansmammoth": "traditional",
    "oneills1850": "traditional",
    "nottingham_dataset": "traditional",
    "miscfolk": "traditional",
    "folk": "traditional",
    "trecento": "unknown",
    "anonymous": "unknown",
    "": "unknown",
}


def normalize_composer(name: str | None) -> str:
    """Lower-case a composer name to its token form: ``"C.P.E. Bach"`` -> ``"cpe_bach"``.

    >>> normalize_composer("Schumann_Robert"), normalize_composer("Burgmüller"), normalize_composer(None)
    ('schumann', 'burgmueller', 'unknown')
    >>> normalize_composer("J.S. Bach"), normalize_composer("Ludwig van Beethoven"), normalize_composer("C.P.E. Bach")
    ('bach', 'beethoven', 'cpe_bach')
    """
    if name is None:
        return "unknown"
    text = name.strip().lower()
    text = text.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae").replace("é", "e").replace("è", "e")
    text = re.sub(r"[\s\-]+", "_", text)
    text = re.sub(r"[^a-z0-9_]", "", text).strip("_")
    if text in COMPOSER_ALIASES:
        return COMPOSER_ALIASES[text]
    squashed = text.replace("_", "")
    if squashed in COMPOSER_ALIASES:
        return COMPOSER_ALIASES[squashed]
    if text not in DEFAULT_COMPOSERS:
        # "J.S. Bach", "Johann Sebastian Bach", "Ludwig van Beethoven": the surname names the composer.
        surname = text.rsplit("_", 1)[-1]
        if surname in DEFAULT_COMPOSERS:
            return surname
    return text


class VocabularyLayout:
    """Where each kind of word lives in a `MaiaTokenizer`'s ids: the one place that knows the ranges.

    Generation, evaluation, data statistics, training samples and memorisation ask this object
    instead of doing offset arithmetic of their own. Array methods take and return numpy arrays (or
    torch tensors: the comparisons are elementwise).

    Attributes:
        on, off, wait, velocity (`int`): first id of the note-on (``p21``), note-off (``endp21``),
            wait (``wait1``) and dynamics (``v0``) words.
        n_pitches, pitch_min (`int`): pitches in the vocabulary and the lowest one (MIDI number).
        max_wait, n_velocity (`int`): longest wait in steps; number of dynamics words (0: none).
        codec_offset (`int`): id of the codec's first word; ``id - codec_offset`` is its codec index.
        pad, unk, bos, eos (`int`): the special ids; composer_ids (`dict[str, int]`): composer -> id.
        fim_prefix, fim_suffix, fim_middle (`int` or `None`): the fill-in-the-middle ids (None for a
            vocabulary saved without them; see :meth:`MaiaTokenizer.add_fim_tokens`).

    Example:

    ```python
    >>> from maia_hf import MaiaTokenizer
    >>> layout = MaiaTokenizer().layout
    >>> ids = MaiaTokenizer().encode_text("p60 wait6 endp60", composer="bach")
    >>> [layout.kind(i) for i in ids]
    ['bos', 'composer', 'note_on', 'wait', 'note_off', 'eos']
    >>> layout.composer_of(ids), layout.strip_special(ids) == ids[2:-1]
    ('bach', True)

    ```
    """

    KINDS = ("note_on", "note_off", "wait", "velocity", "composer", "pad", "unk", "bos", "eos", "fim", "other")

    def __init__(self, tokenizer: MaiaTokenizer):
        codec = tokenizer.codec
        offset = tokenizer.codec_offset
        self.codec_offset = offset
        self.n_pitches = codec.n_pitches
        self.pitch_min = codec.config.pitch_min
        self.on = offset + codec.on_offset
        self.off = offset + codec.off_offset
        self.wait = offset + codec.wait_offset
        self.max_wait = codec.config.max_wait
        self.velocity = offset + codec.velocity_offset
        self.n_velocity = codec.config.velocity_bins
        self.codec_end = offset + codec.size
        self.pad, self.unk = tokenizer.pad_token_id, tokenizer.unk_token_id
        self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        vocab = tokenizer.get_vocab()
        self.composer_ids = {
            t[len(COMPOSER_PREFIX) : -1]: i
            for t, i in sorted(vocab.items(), key=lambda kv: kv[1])
            if t.startswith(COMPOSER_PREFIX)
        }
        self._composer_names = {i: name for name, i in self.composer_ids.items()}
        self.fim_prefix, self.fim_suffix, self.fim_middle = (vocab.get(t) for t in FIM_TOKENS)
        self._tokenizer = tokenizer

    @property
    def has_fim(self) -> bool:
        """Whether the vocabulary holds the three fill-in-the-middle tokens."""
        return None not in (self.fim_prefix, self.fim_suffix, self.fim_middle)

    @property
    def vocab_size(self) -> int:
        """Ids in the vocabulary, tokens added after loading included."""
        return len(self._tokenizer)

    # ---- elementwise tests (numpy arrays, torch tensors or plain ints) -------------------------

    def is_note_on(self, ids):
        return (ids >= self.on) & (ids < self.on + self.n_pitches)

    def is_note_off(self, ids):
        return (ids >= self.off) & (ids < self.off + self.n_pitches)

    def is_wait(self, ids):
        return (ids >= self.wait) & (ids < self.wait + self.max_wait)

    def is_codec_word(self, ids):
        """Music words (notes, waits, dynamics), as opposed to special and composer tokens."""
        return (ids >= self.codec_offset) & (ids < self.codec_end)

    def wait_steps(self, ids):
        """Length in steps of each wait word, 0 for every other id."""
        import numpy as np

        if hasattr(ids, "masked_fill"):  # a torch tensor
            return (ids - self.wait + 1).masked_fill(~self.is_wait(ids), 0)
        ids = np.asarray(ids)
        return np.where(self.is_wait(ids), ids - self.wait + 1, 0)

    def pitch(self, ids):
        """MIDI pitch of note-on and note-off words (meaningless for other ids)."""
        return ids - self.on - self.is_note_off(ids) * self.n_pitches + self.pitch_min

    # ---- single ids and sequences -----------------------------------------------------------

    def kind(self, token_id: int) -> str:
        """The kind of one id: one of :attr:`KINDS`."""
        token_id = int(token_id)
        for name, test in (("note_on", self.is_note_on), ("note_off", self.is_note_off), ("wait", self.is_wait)):
            if test(token_id):
                return name
        if self.velocity <= token_id < self.velocity + self.n_velocity:
            return "velocity"
        if token_id in self._composer_names:
            return "composer"
        special = {self.pad: "pad", self.unk: "unk", self.bos: "bos", self.eos: "eos"}
        if token_id in (self.fim_prefix, self.fim_suffix, self.fim_middle):
            return "fim"
        return special.get(token_id, "other")

    def composer_of(self, ids) -> str | None:
        """The composer named by the first composer token in ``ids`` (None if there is none)."""
        for token_id in ids:
            name = self._composer_names.get(int(token_id))
            if name is not None:
                return name
        return None

    def strip_special(self, ids) -> list[int]:
        """``ids`` without special and composer tokens: only the music words, in order."""
        return [int(i) for i in ids if self.codec_offset <= int(i) < self.codec_end]

    def codec_indices(self, ids):
        """Music-word ids as the codec's own indices (``id - codec_offset``); other ids are dropped."""
        import numpy as np

        ids = np.asarray(ids, dtype=np.int64)
        return ids[self.is_codec_word(ids)] - self.codec_offset


def build_vocabulary(codec: NotewiseCodec, composers=DEFAULT_COMPOSERS) -> dict[str, int]:
    """The fixed token -> id map: special tokens, codec words, composer tokens, fill-in-the-middle tokens."""
    tokens = list(SPECIAL_TOKENS.values()) + codec.vocabulary() + [f"<composer:{c}>" for c in composers]
    tokens += list(FIM_TOKENS)
    return {token: i for i, token in enumerate(tokens)}


class MaiaTokenizer(PreTrainedTokenizerFast):
    """Notewise words <-> ids, with ``<start>``, ``<end>`` and ``<composer:NAME>`` special tokens.

    The standard tokenizer methods work on notewise text (``tokenizer("p60 wait12 endp60")``; an
    unknown word becomes ``<unk>`` as in every `transformers` tokenizer). The music methods read and
    write scores: :meth:`encode_score`, :meth:`decode_to_score`, :meth:`decode_to_midi`, and the strict
    :meth:`encode_text`, which raises :class:`~maia_hf.errors.MaiaTokenError` on an unknown word.

    Args:
        tokenizer_file (`str`, *optional*): a saved ``tokenizer.json``; built from the codec when absent.
        steps_per_quarter (`int`, *optional*, defaults to 12): the grid (see `CodecConfig`).
        max_wait (`int`, *optional*, defaults to 48): the longest ``wait`` word.
        velocity_bins (`int`, *optional*, defaults to 0): number of ``v{b}`` dynamics words (0: none).
        default_velocity (`int`, *optional*, defaults to 80): velocity of decoded notes without dynamics.
        composers (`list[str]`, *optional*): composer names for a new vocabulary (default: `DEFAULT_COMPOSERS`).
        add_bos_token (`bool`, *optional*, defaults to `True`): ``tokenizer(text)`` puts ``<start>`` first
            (``add_special_tokens=False`` writes the words only). No ``<end>`` is added: a prompt goes on.

    Example:

    ```python
    >>> from maia_hf import MaiaTokenizer
    >>> tokenizer = MaiaTokenizer()
    >>> ids = tokenizer.encode_text("p60 wait12 endp60", composer="mozart")
    >>> tokenizer.decode(ids)
    '<start> <composer:mozart> p60 wait12 endp60 <end>'
    >>> tokenizer.decode_to_piece(ids).notes.as_tuples()
    [(60, 0, 12)]
    >>> tokenizer("p60 wait12")["input_ids"], tokenizer("p60 wait12", add_special_tokens=False)["input_ids"]
    ([2, 43, 191], [43, 191])

    ```
    """

    vocab_files_names = {"tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "attention_mask"]
    slow_tokenizer_class = None

    def __init__(
        self,
        tokenizer_file: str | None = None,
        tokenizer_object: Tokenizer | None = None,
        steps_per_quarter: int = 12,
        max_wait: int = 48,
        velocity_bins: int = 0,
        default_velocity: int = 80,
        composers=None,
        **kwargs,
    ):
        codec = NotewiseCodec(
            CodecConfig(
                steps_per_quarter=steps_per_quarter,
                max_wait=max_wait,
                velocity_bins=velocity_bins,
                default_velocity=default_velocity,
            )
        )
        # from_pretrained hands a saved tokenizer.json's vocabulary over as ``vocab``: keep it as saved
        # (its composers, with or without the fill-in-the-middle tokens) rather than today's default.
        vocab = kwargs.pop("vocab", None)
        if tokenizer_object is None and tokenizer_file is None:
            if not isinstance(vocab, dict) or not vocab:
                vocab = build_vocabulary(codec, tuple(composers) if composers is not None else DEFAULT_COMPOSERS)
            tokenizer_object = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
            tokenizer_object.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        for key, value in SPECIAL_TOKENS.items():
            kwargs.setdefault(key, value)
        vocab = (tokenizer_object or Tokenizer.from_file(tokenizer_file)).get_vocab()
        if "extra_special_tokens" not in kwargs:
            special = (t for t in vocab if t.startswith(COMPOSER_PREFIX) or t in FIM_TOKENS)
            kwargs["extra_special_tokens"] = sorted(special, key=vocab.get)
        # Every sequence maia trains on begins with <start>: tokenizer(text) adds it, as GPT-2's tokenizer
        # does with add_bos_token=True; add_special_tokens=False leaves the words alone.
        kwargs.setdefault("add_bos_token", True)
        super().__init__(
            tokenizer_file=tokenizer_file,
            tokenizer_object=tokenizer_object,
            steps_per_quarter=steps_per_quarter,
            max_wait=max_wait,
            velocity_bins=velocity_bins,
            default_velocity=default_velocity,
            **kwargs,
        )
        self.codec = codec
        self._check_vocabulary(vocab)

    def _check_vocabulary(self, vocab: dict[str, int]) -> None:
        words = self.codec.vocabulary()
        offset = vocab.get(words[0], -1)
        if any(vocab.get(w) != offset + i for i, w in enumerate(words)):
            raise MaiaInputError(
                f"the tokenizer vocabulary does not hold the codec's {len(words)} words in order "
                f"({self.codec.describe_vocabulary()}); rebuild it with MaiaTokenizer(...) and the same settings"
            )
        self.codec_offset = offset
        self.layout = VocabularyLayout(self)

    # ---- fill in the middle -----------------------------------------------------------------

    def add_fim_tokens(self) -> int:
        """Add ``<fim_prefix> <fim_suffix> <fim_middle>`` to a vocabulary saved without them.

        They get the next free ids, as in a new vocabulary; a model trained on the old vocabulary then
        needs ``model.resize_token_embeddings(len(tokenizer))`` (training's ``init_from`` does it).

        Returns:
            `int`: the number of tokens added (0 when the vocabulary already has them).
        """
        missing = [t for t in FIM_TOKENS if t not in self.get_vocab()]
        if missing:
            self.add_special_tokens({"extra_special_tokens": [*self.extra_special_tokens, *missing]})
            self.layout = VocabularyLayout(self)
        return len(missing)

    def extends(self, other) -> bool:
        """Whether every token of ``other``'s vocabulary has the same id here (this one may have more, such as
        the fill-in-the-middle tokens): ids written with ``other`` mean the same with this tokenizer."""
        vocab = self.get_vocab()
        return all(vocab.get(token) == i for token, i in other.get_vocab().items())

    # ---- composers -----------------------------------------------------------------------

    @property
    def composers(self) -> list[str]:
        """Composer names that have a ``<composer:NAME>`` token, in id order."""
        return list(self.layout.composer_ids)

    def composer_token_id(self, composer: str | None) -> int:
        """Id of ``<composer:NAME>`` for a composer name in any spelling; None gives ``unknown``.

        Raises:
            MaiaTokenError: the composer has no token (the message lists those that do).
        """
        name = normalize_composer(composer)
        token_id = self.get_vocab().get(f"<composer:{name}>")
        if token_id is None:
            raise MaiaTokenError(
                f"composer {composer!r} has no token; use one of {', '.join(self.composers)} "
                "(or None for <composer:unknown>)"
            )
        return token_id

    # ---- encoding music --------------------------------------------------------------------

    def notes_to_ids(self, notes: NoteArray, transpose: int = 0, canonical: bool = False) -> list[int]:
        """The codec's words for ``notes`` (times in steps) as token ids, without special tokens."""
        return (self.codec.encode(notes, transpose=transpose, canonical=canonical) + self.codec_offset).tolist()

    def _wrap(self, body: list[int], composer: str | None) -> list[int]:
        return [self.bos_token_id, self.composer_token_id(composer), *body, self.eos_token_id]

    def encode_score(self, path_or_score, composer: str | None = None, transpose: int = 0) -> list[int]:
        """Encode one piece as ``<start> <composer:NAME> words... <end>`` ids.

        Args:
            path_or_score: a MIDI / MusicXML / .mxl / .krn / ABC path, ``"music21:<corpus path>"``, a
                `symusic.Score`, a music21 stream, or a :class:`~maia_hf.codec.Piece` already on the grid.
            composer (`str`, *optional*): composer name (any spelling); None writes ``<composer:unknown>``.
            transpose (`int`, *optional*, defaults to 0): semitones, folded into the piano range.

        Raises:
            MaiaInputError: the input is unreadable, or holds several pieces (use :meth:`encode_scores`).
        """
        pieces = self.encode_scores(path_or_score, composer=composer, transpose=transpose)
        if len(pieces) != 1:
            raise MaiaInputError(
                f"{str(path_or_score)!r} holds {len(pieces)} pieces; use encode_scores() to get one id list each"
            )
        return pieces[0]

    def encode_scores(self, path_or_score, composer: str | None = None, transpose: int = 0) -> list[list[int]]:
        """Like :meth:`encode_score`, one id list per piece (e.g. each tune of an ABC file)."""
        if isinstance(path_or_score, Piece):
            return [self._wrap(self.notes_to_ids(path_or_score.notes, transpose), composer)]
        pieces = [to_piece(raw, self.codec, transpose)[0] for raw in read_raw(path_or_score)]
        return [self._wrap(self.notes_to_ids(p.notes, canonical=True), composer) for p in pieces]

    def encode_text(self, text: str, composer: str | None = None, source: str = "text") -> list[int]:
        """Strictly encode notewise text as ``<start> <composer> ... <end>`` ids.

        Unlike ``tokenizer(text)``, an unknown word is an error that names it and its position.
        Special tokens already in the text (``<start>``, composer tokens...) are dropped first.
        """
        words = [w for w in text.split() if not (w.startswith("<") and w.endswith(">"))]
        return self._wrap((self.codec.words_to_indices(words, source=source) + self.codec_offset).tolist(), composer)

    # ---- decoding music ----------------------------------------------------------------------

    def decode_to_piece(self, ids, tempos=None, time_signatures=None, name: str = "") -> Piece:
        """Decode token ids to a :class:`~maia_hf.codec.Piece`; special tokens are skipped, never an error.

        Args:
            ids: token ids (a list, a 1-D tensor or array).
            tempos, time_signatures (*optional*): metadata to carry (e.g. the prompt's); default 120 qpm, 4/4.
        """
        import numpy as np

        ids = np.asarray(ids.tolist() if hasattr(ids, "tolist") else ids, dtype=np.int64).reshape(-1)
        result = self.codec.decode(ids - self.codec_offset)
        return Piece(result.notes, list(tempos or []), list(time_signatures or []), name)

    def decode_to_score(self, ids, tempos=None, time_signatures=None):
        """Decode token ids to a one-track piano ``symusic.Score``."""
        from .io import piece_to_symusic

        piece = self.decode_to_piece(ids, tempos, time_signatures)
        return piece_to_symusic(piece, self.codec.config.steps_per_quarter)

    def decode_to_midi(self, ids, path, tempos=None, time_signatures=None) -> Path:
        """Decode token ids and write them as a MIDI file at ``path``."""
        piece = self.decode_to_piece(ids, tempos, time_signatures)
        return write_midi(piece, path, self.codec.config.steps_per_quarter)


def save_default_tokenizer(path) -> MaiaTokenizer:
    """Write the default tokenizer to ``path`` as the repository's ``tokenizer/`` holds it.

    Unlike a model directory it carries no code and no ``auto_map``, so plain
    ``AutoTokenizer.from_pretrained(path)`` loads it anywhere (as a generic fast tokenizer without
    maia, as a `MaiaTokenizer` after ``import maia_hf``) and never asks for ``trust_remote_code``.
    """
    tokenizer = MaiaTokenizer()
    tokenizer._auto_class = None  # this instance only: skip the code copy that registration enables
    tokenizer.save_pretrained(path)
    return tokenizer
