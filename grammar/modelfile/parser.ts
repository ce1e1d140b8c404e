/**
 * The Modelfile parser (Chevrotain CstParser). The lexer already cuts the input into instructions, so the
 * grammar is small; error recovery stays on so that any unexpected token sequence still yields a CST.
 *
 *   modelfile   := (LineEnd | instruction)*
 *   instruction := textCommand | parameterCommand | messageCommand | unknownCommand
 *   textCommand      := TextKeyword AnyValue?
 *   parameterCommand := PARAMETER (Name AnyValue?)?
 *   messageCommand   := MESSAGE (Name AnyValue?)?
 *   unknownCommand   := UnknownWord AnyValue?
 */
import { CstParser } from "./chevrotain.js";
import { allTokens, AnyValue, LineEnd, MessageKw, Name, ParameterKw, TextKeyword, UnknownWord } from "./tokens.js";

export interface ParserOptions {
  /**
   * Run Chevrotain's grammar validations (ambiguities, duplicate productions). Off by default, for a
   * faster start; a test runs them, so the grammar is still checked.
   */
  validate?: boolean;
}

export class ModelfileParser extends CstParser {
  constructor(options: ParserOptions = {}) {
    super(allTokens, { recoveryEnabled: true, maxLookahead: 2, skipValidations: !options.validate });
    this.performSelfAnalysis();
  }

  public modelfile = this.RULE("modelfile", () => {
    this.MANY(() => {
      this.OR([{ ALT: () => this.CONSUME(LineEnd) }, { ALT: () => this.SUBRULE(this.instruction) }]);
    });
  });

  private instruction = this.RULE("instruction", () => {
    this.OR([
      { ALT: () => this.SUBRULE(this.textCommand) },
      { ALT: () => this.SUBRULE(this.parameterCommand) },
      { ALT: () => this.SUBRULE(this.messageCommand) },
      { ALT: () => this.SUBRULE(this.unknownCommand) },
    ]);
  });

  private textCommand = this.RULE("textCommand", () => {
    this.CONSUME(TextKeyword);
    this.OPTION(() => this.CONSUME(AnyValue));
  });

  private parameterCommand = this.RULE("parameterCommand", () => {
    this.CONSUME(ParameterKw);
    this.OPTION(() => {
      this.CONSUME(Name);
      this.OPTION2(() => this.CONSUME(AnyValue));
    });
  });

  private messageCommand = this.RULE("messageCommand", () => {
    this.CONSUME(MessageKw);
    this.OPTION(() => {
      this.CONSUME(Name);
      this.OPTION2(() => this.CONSUME(AnyValue));
    });
  });

  private unknownCommand = this.RULE("unknownCommand", () => {
    this.CONSUME(UnknownWord);
    this.OPTION(() => this.CONSUME(AnyValue));
  });
}
